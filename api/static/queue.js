// Review queue: one key per decision, the next case (and its images) preloaded, decisions sent in the
// background so the step from one case to the next never waits on the network.
import {
  ESCALATION_ZH, fill, KIND_KEYS, OBJECT_ZH, REASONS, STATUS_ZH, auth, del, dwellSeconds, el, fmtDuration, fmtShortTime, fmtTime,
  get, kindName, loadKinds, onQueueChange, post, svg, toast,
} from "./api.js";

const PAGE = 50;
const PRELOAD_AHEAD = 2;
const RECLAIM_MS = 120_000; // the server leases a case for 5 minutes; renew well before
const UNCLASSIFIED = "__unclassified"; // the kind filter's 待分类 entry

/** Kinds a reviewer can give a 待分类 case, each with its key: those with object classes (a box's label). */
export function kindChoices(kinds) {
  return kinds.filter((k) => k.classes.length).slice(0, KIND_KEYS.length).map((k, i) => ({ ...k, key: KIND_KEYS[i] }));
}

/** Whether a kind is vending: 占道经营 itself, or a configured kind of vending stalls (e.g. 出店陈列). */
export function isVending(kind, kinds = []) {
  return kind === "street_vending" || kinds.some((k) => k.id === kind && k.classes.includes("vending_stall"));
}

/** Reject reasons that fit a case: 合规经营 (permitted vending) only where the case is vending. */
export function reasonsFor(kind, kinds = []) {
  return REASONS.filter((r) => r.code !== "permitted_vending" || isVending(kind, kinds));
}

export function mountQueue(root) {
  const state = {
    order: localStorage.getItem("urbaneye.order") || "oldest",
    queue: [],            // CasePublic, pending
    index: 0,
    total: 0,
    details: new Map(),   // id -> Promise<CaseDetail>
    similar: new Map(),   // id -> Promise<CasesPublic>
    images: new Map(),    // url -> Image (kept so the browser keeps them decoded)
    decided: [],          // stack of {c, decision, reason, request}
    done: 0,
    shownAt: performance.now(),
    variant: "annotated",
    zoom: false,
    zoomSeq: 2,           // which evidence frame Z / a strip click opens
    noteOpen: false,
    corrections: [],
    label: "",
    classBox: null,       // {bbox_xyxy, seq}: the object's box a reviewer drew on a 待分类 case
    kindFilter: localStorage.getItem("urbaneye.kindFilter") || "", // "", UNCLASSIFIED or a kind id
    kinds: [],            // GET /kinds
    loading: false,
    gen: 0,               // bumped by each reload: answers of an earlier order/filter are dropped
    claimed: null,        // id of the case this reviewer holds now
    claiming: new Map(),  // id -> Promise<bool>: the claim asked for when the case was shown
    fresh: new Set(),     // ids that arrived live and have not been looked at
    refreshing: null,     // the refresh in flight after a live event
    shown: null,          // CaseDetail on screen
  };
  const canDecide = ["admin", "reviewer"].includes(auth.user.role);
  let alive = true; // false once the page is left: answers still arriving must not claim or draw

  // ---- layout ---------------------------------------------------------------------------------
  const orderSel = el("select", { id: "order", "aria-label": "排序", onchange: (e) => {
    state.order = e.target.value;
    localStorage.setItem("urbaneye.order", state.order);
    reload();
  } },
  el("option", { value: "oldest" }, "最早优先"), el("option", { value: "escalation" }, "升级（红/黄）优先"));
  orderSel.value = state.order;
  const kindSel = el("select", { id: "kind-filter", "aria-label": "类型筛选", onchange: (e) => {
    state.kindFilter = e.target.value;
    localStorage.setItem("urbaneye.kindFilter", state.kindFilter);
    reload();
  } }, el("option", { value: "" }, "全部类型"), el("option", { value: UNCLASSIFIED }, "待分类"));
  loadKinds(true).then((kinds) => {
    state.kinds = kinds;
    kindSel.append(...kinds.map((k) => el("option", { value: k.id }, `${k.name_zh}（${k.gbt_code}）`)));
    kindSel.value = state.kindFilter;
    if (kindSel.value !== state.kindFilter) { state.kindFilter = ""; reload(); } // a kind no longer known
    const shown = state.shown?.id === current()?.id ? state.shown : null;
    // its kind keys (待分类), or 合规经营 for a configured vending kind: both need the kinds
    if (shown && (shown.unclassified || isVending(shown.kind, kinds) !== isVending(shown.kind))) renderCase(shown);
  }).catch((err) => toast(err.message, "error"));
  const list = el("ol", { class: "qitems", id: "queue-list" });
  const counter = el("span", { id: "queue-total" });
  const doneCounter = el("span", { class: "muted", id: "done-count" });
  const notice = el("button", { class: "new-cases", id: "new-cases", hidden: true, onclick: () => jumpToFresh() });
  const aside = el("aside", { class: "qlist" },
    el("div", { class: "qhead" }, el("h2", {}, "待审核 ", counter), orderSel, kindSel), doneCounter, notice, list);
  const main = el("section", { class: "case", id: "case" });
  const page = el("div", { class: "queue-page" }, aside, main);
  root.append(page);

  // ---- data -----------------------------------------------------------------------------------
  const queueQuery = () => ({
    status: "pending_review", order: state.order, limit: PAGE, unclaimed: canDecide || undefined,
    kind: state.kindFilter && state.kindFilter !== UNCLASSIFIED ? state.kindFilter : undefined,
    unclassified: state.kindFilter === UNCLASSIFIED ? true : undefined,
  });

  /** One page of the queue; null when the order or filter changed while it was on its way (a stale answer
   * must not mix another filter's cases into the list). */
  async function fetchPage() {
    const gen = state.gen;
    const res = await get("cases", queueQuery());
    if (gen !== state.gen) return null;
    state.total = res.count;
    const known = new Set([...state.queue.map((c) => c.id), ...state.decided.map((d) => d.c.id)]);
    for (const c of res.data) if (!known.has(c.id)) state.queue.push(c);
    return res;
  }

  /** A live event: the queue changed somewhere (a new case, a decision, a claim). Fetch it once and merge:
   * new cases join the list (announced as "N 件新案件"), cases others took or decided leave it. */
  function refresh() {
    if (state.loading) { state.refreshAfterLoad = true; return null; } // the load in flight reads the queue anyway
    if (state.refreshing) return state.refreshing;
    const gen = state.gen;
    state.refreshing = (async () => {
      const res = await get("cases", queueQuery());
      if (gen !== state.gen) return; // the filter or order changed meanwhile: the reload reads the queue
      const cur = current();
      const server = new Set(res.data.map((c) => c.id));
      const decided = new Set(state.decided.map((d) => d.c.id));
      if (res.data.length === res.count) { // the whole queue is in this page: drop what is gone
        state.queue = state.queue.filter((c) => server.has(c.id) || c.id === cur?.id);
        if (cur) state.index = state.queue.findIndex((c) => c.id === cur.id);
      }
      const known = new Set(state.queue.map((c) => c.id));
      const added = res.data.filter((c) => !known.has(c.id) && !decided.has(c.id));
      state.queue.push(...added);
      for (const c of added) state.fresh.add(c.id);
      // the server still counts a case whose decision from this tab is on its way: it has left this queue
      const inFlight = res.data.filter((c) => decided.has(c.id)).length;
      state.total = res.count - inFlight + (cur && !server.has(cur.id) ? 1 : 0);
      if (!cur && state.queue.length) { state.index = 0; show(); } // an empty queue refills itself
      else renderList();
    })().catch(() => {}).finally(() => { state.refreshing = null; });
    return state.refreshing;
  }

  function jumpToFresh() {
    const i = state.queue.findIndex((c) => state.fresh.has(c.id));
    if (i >= 0) { state.index = i; show(); }
  }

  /** Lease the case to this reviewer; false (with a Chinese message shown) when someone else has it. */
  async function claim(c) {
    if (!canDecide || !alive) return alive;
    let res;
    try { res = await post(`cases/${c.id}/claim`); } catch { return true; } // unreachable now: the decision will tell
    if (res.claimed) { state.claimed = c.id; return true; }
    toast(res.detail, "error");
    return false;
  }

  function releaseClaim(keep = null) {
    const id = state.claimed;
    if (!id || id === keep) return;
    state.claimed = null;
    if (auth.token) del(`cases/${id}/claim`).catch(() => {});
  }

  async function reload() {
    const gen = ++state.gen;
    state.queue = [];
    state.index = 0;
    state.details.clear();
    state.loading = true;
    render();
    try { await fetchPage(); } catch (err) { toast(err.message, "error"); }
    if (gen !== state.gen) return; // a later reload (another filter or order) owns the list now
    state.loading = false;
    show();
    if (state.refreshAfterLoad) { state.refreshAfterLoad = false; refresh(); }
  }

  function detail(id) {
    if (!state.details.has(id)) {
      const p = get(`cases/${id}`);
      p.catch(() => state.details.delete(id));
      state.details.set(id, p);
    }
    return state.details.get(id);
  }

  function similar(id) {
    if (!state.similar.has(id)) state.similar.set(id, get(`cases/${id}/similar`, { limit: 5 }));
    return state.similar.get(id);
  }

  function preloadImages(d) {
    for (const ev of d.evidence) {
      if (!ev.url || state.images.has(ev.url)) continue;
      const img = new Image();
      img.decoding = "async";
      img.src = ev.url;
      state.images.set(ev.url, img);
    }
  }

  function preloadAhead() {
    for (let k = 1; k <= PRELOAD_AHEAD; k++) {
      const c = state.queue[state.index + k];
      if (c) detail(c.id).then(preloadImages).catch(() => {});
    }
    if (state.queue.length - state.index < 10 && state.queue.length < state.total) {
      fetchPage().then(renderList).catch(() => {});
    }
  }

  const current = () => state.queue[state.index];

  // ---- rendering ------------------------------------------------------------------------------
  function renderList() {
    counter.textContent = String(Math.max(state.total, 0));
    doneCounter.textContent = state.done ? `本次已审 ${state.done} 件` : "";
    const pos = document.getElementById("queue-pos");
    if (pos) pos.textContent = `${state.index + 1} / ${state.total}`;
    const cur = current();
    if (cur) state.fresh.delete(cur.id);
    notice.hidden = !state.fresh.size;
    notice.textContent = `${state.fresh.size} 件新案件`;
    list.replaceChildren(...state.queue.slice(0, 200).map((c, i) => el("li", {
      class: `qitem ${i === state.index ? "current" : ""} ${state.fresh.has(c.id) ? "fresh" : ""}`,
      dataset: { id: c.id },
      onclick: () => { state.index = i; show(); },
    },
    el("i", { class: `dot ${c.escalation}`, title: `${ESCALATION_ZH[c.escalation] || c.escalation}` }),
    el("span", { class: "qkind" }, kindName(c.kind, c.kind_name_zh),
      c.unclassified ? el("span", { class: "tag unclassified" }, "待分类") : null),
    el("span", { class: "qmeta" }, `${c.camera_name || c.camera_id} · ${fmtShortTime(c.created_at, c.camera_timezone)}`))));
    list.querySelector(".current")?.scrollIntoView({ block: "nearest" });
  }

  function render() {
    renderList();
    state.shown = null;
    delete main.dataset.caseId;
    delete main.dataset.claimedId;
    main.replaceChildren(state.loading ? el("p", { class: "empty" }, "加载中…")
      : el("div", { class: "empty", id: "queue-empty" },
        el("p", {}, "队列已清空：没有待审核的案件"),
        el("p", { class: "small" }, "新案件到达时会自动出现在这里，无需刷新。")));
  }

  async function show() {
    state.zoom = false;
    state.zoomSeq = 2;
    state.noteOpen = false;
    state.corrections = [];
    state.label = "";
    state.classBox = null;
    if (!alive) return;
    const c = current();
    releaseClaim(c?.id);
    renderList();
    if (!c) { render(); return; }
    state.shownAt = performance.now();
    const id = c.id;
    // the case is drawn at once from what is preloaded; the claim runs alongside, and a lost claim skips ahead
    const claimed = claim(c);
    state.claiming.set(id, claimed);
    claimed.then((mine) => {
      if (!alive) return;
      if (!mine) drop(c);
      else if (current()?.id === id) main.dataset.claimedId = id;
    });
    let d;
    try { d = await detail(id); } catch (err) { main.replaceChildren(el("p", { class: "error" }, err.message)); return; }
    if (!alive || current()?.id !== id) return; // moved on while loading
    preloadImages(d);
    renderCase(d);
    preloadAhead();
  }

  /** Take a case out of this reviewer's queue (another reviewer has it, or it is decided) and show the next. */
  function drop(c) {
    const i = state.queue.findIndex((x) => x.id === c.id);
    if (i < 0) return;
    state.queue.splice(i, 1);
    state.total = Math.max(state.total - 1, 0);
    if (state.claimed === c.id) state.claimed = null;
    if (state.index >= state.queue.length) state.index = Math.max(state.queue.length - 1, 0);
    show();
  }

  function frame(d, seq, caption) {
    const pick = (variant) => d.evidence.find((e) => e.seq === seq && e.variant === variant);
    const ev = pick(state.variant) || pick("clean") || pick("annotated");
    const [fw, fh] = d.frame_wh.length === 2 ? d.frame_wh : [1, 1];
    const overlay = svg("svg", { class: "overlay", viewBox: "0 0 1 1", preserveAspectRatio: "none" });
    if (state.variant === "clean" && d.zone_polygon.length >= 3) {
      overlay.append(svg("polygon", { class: "zone", points: d.zone_polygon.map(([x, y]) => `${x},${y}`).join(" ") }));
    }
    if (state.variant === "clean" && d.bbox_xyxy.length === 4 && d.frame_wh.length === 2) {
      const [x1, y1, x2, y2] = d.bbox_xyxy;
      overlay.append(svg("rect", { class: "bbox", x: x1 / fw, y: y1 / fh, width: (x2 - x1) / fw, height: (y2 - y1) / fh }));
    }
    if (state.classBox?.seq === seq) {
      const [x1, y1, x2, y2] = state.classBox.bbox_xyxy;
      overlay.append(svg("rect", { class: "corr classbox", x: x1 / fw, y: y1 / fh, width: (x2 - x1) / fw, height: (y2 - y1) / fh }));
    }
    for (const corr of state.corrections.filter((k) => k.seq === seq)) {
      const [x1, y1, x2, y2] = corr.bbox_xyxy;
      overlay.append(svg("rect", { class: "corr", x: x1 / fw, y: y1 / fh, width: (x2 - x1) / fw, height: (y2 - y1) / fh }));
    }
    const img = ev?.url ? el("img", { src: ev.url, alt: caption, draggable: "false" })
      : el("div", { class: "noimg" }, ev ? "证据上传中…" : "无此帧");
    const wrap = el("div", { class: "imgwrap" }, img, overlay);
    if (canDecide && ev?.url && d.frame_wh.length === 2) enableBoxDrawing(wrap, d, seq);
    return el("figure", { class: "frame", dataset: { seq: String(seq) } }, wrap,
      el("figcaption", {}, el("b", {}, caption), " ", el("time", { class: "frame-time" }, fmtTime(ev?.frame_ts, d.camera_timezone)),
        ev ? el("span", { class: "hash", title: `SHA-256 ${ev.sha256}` }, ` SHA-256 ${ev.sha256.slice(0, 12)}…`) : null));
  }

  function enableBoxDrawing(wrap, d, seq) {
    // drag on a frame to add a missed/mislabelled object box (kept with the review for retraining)
    let start = null;
    let ghost = null;
    const rel = (e) => {
      const r = wrap.getBoundingClientRect();
      return [Math.min(Math.max((e.clientX - r.left) / r.width, 0), 1), Math.min(Math.max((e.clientY - r.top) / r.height, 0), 1)];
    };
    wrap.addEventListener("mousedown", (e) => {
      if (e.button !== 0) return;
      start = rel(e);
      ghost = svg("rect", { class: "corr ghost", x: start[0], y: start[1], width: 0, height: 0 });
      wrap.querySelector("svg").append(ghost);
      e.preventDefault();
    });
    wrap.addEventListener("mousemove", (e) => {
      if (!start) return;
      const [x, y] = rel(e);
      ghost.setAttribute("x", Math.min(x, start[0])); ghost.setAttribute("y", Math.min(y, start[1]));
      ghost.setAttribute("width", Math.abs(x - start[0])); ghost.setAttribute("height", Math.abs(y - start[1]));
    });
    const finish = (e) => {
      if (!start) return;
      const [x, y] = rel(e);
      const [fw, fh] = d.frame_wh;
      const box = [Math.min(x, start[0]) * fw, Math.min(y, start[1]) * fh, Math.max(x, start[0]) * fw, Math.max(y, start[1]) * fh]
        .map((v) => Math.round(v));
      start = null;
      ghost?.remove();
      if (box[2] - box[0] < 6 || box[3] - box[1] < 6) return; // a click, not a box
      if (d.unclassified) { // a 待分类 case: the drawn box is the object's, sent with the kind key
        state.classBox = { bbox_xyxy: box, seq };
        renderCase(d);
        toast("已调整目标框：按类型键确认分类");
        return;
      }
      state.corrections.push({ action: "add", bbox_xyxy: box, label: state.label || "vending_stall", seq });
      renderCase(d);
      toast(`已添加更正框：${OBJECT_ZH[state.label || "vending_stall"]}`);
    };
    wrap.addEventListener("mouseup", finish);
    wrap.addEventListener("mouseleave", finish);
  }

  function renderCase(d) {
    const crop = d.evidence.find((e) => e.variant === "crop" && e.seq === 2) || d.evidence.find((e) => e.variant === "crop");
    const similarBox = el("ul", { class: "similar", id: "similar" }, el("li", { class: "muted" }, "加载中…"));
    similar(d.id).then((res) => {
      similarBox.replaceChildren(...(res.data.length ? res.data.map((s) => el("li", {},
        el("span", { class: `status ${s.status}` }, STATUS_ZH[s.status] || s.status),
        ` ${fmtTime(s.created_at, s.camera_timezone)} · ${kindName(s.kind, s.kind_name_zh)}`,
        s.reject_reason ? ` · ${REASONS.find((r) => r.code === s.reject_reason)?.zh || s.reject_reason}` : "",
      )) : [el("li", { class: "muted" }, "此处此前无案件")]));
    }).catch(() => similarBox.replaceChildren(el("li", { class: "muted" }, "—")));

    const labelSel = el("select", { id: "corr-label", "aria-label": "更正标签", onchange: (e) => { state.label = e.target.value; } },
      el("option", { value: "" }, "更正标签…"),
      ...Object.entries(OBJECT_ZH).map(([k, v]) => el("option", { value: k }, v)));
    labelSel.value = state.label;
    const corrList = el("div", { class: "corrs" }, ...state.corrections.map((k, i) => el("span", { class: "chip" },
      `${k.action === "add" ? "新增" : "改为"} ${OBJECT_ZH[k.label] || k.label}`,
      el("button", { class: "link", title: "删除", onclick: () => { state.corrections.splice(i, 1); renderCase(d); } }, "×"))));

    const reasonButtons = reasonsFor(d.kind, state.kinds).map((r) => el("button", {
      class: "reject", dataset: { reason: r.code }, disabled: !canDecide,
      onclick: () => (r.code === "other" ? openNote() : decide("reject", r.code)),
    }, el("kbd", {}, r.key), ` ${r.zh}`));

    state.shown = d;
    main.dataset.caseId = d.id; // the case on screen: decisions apply to it only
    if (state.claimed === d.id) main.dataset.claimedId = d.id;
    else delete main.dataset.claimedId;
    const zoomEv = mainFrame(d);
    const choices = d.unclassified ? kindChoices(state.kinds) : [];
    const pending = el("span", { class: "tag unclassified", id: "unclassified-badge" }, "待分类");
    fill(main,
      el("div", { class: "case-head" },
        el("h2", {}, kindName(d.kind, d.kind_name_zh), " ", el("span", { class: "gbt" }, `${d.gbt_code} ${d.gbt_name}`)),
        d.unclassified ? pending : null,
        el("span", { class: `badge ${d.escalation}` }, `${ESCALATION_ZH[d.escalation] || d.escalation}单`),
        el("a", { class: "case-link small", href: `#/case/${encodeURIComponent(d.id)}`, title: "案件详情：时间线、视频核查" }, "详情"),
        el("span", { class: "pos muted", id: "queue-pos" }, `${state.index + 1} / ${state.total}`)),
      el("dl", { class: "meta", id: "facts" },
        el("dt", {}, "类型"), el("dd", { id: "fact-kind" },
          d.unclassified ? `待分类（疑似${kindName(d.kind, d.kind_name_zh)}）` : kindName(d.kind, d.kind_name_zh)),
        el("dt", {}, "区域"), el("dd", { id: "fact-zone" }, d.zone_name || "未命名区域"),
        el("dt", {}, "摄像头"), el("dd", { id: "fact-camera", title: d.camera_id }, d.camera_name || d.camera_id),
        el("dt", {}, "地点"), el("dd", { title: d.address }, d.address || "—"),
        el("dt", {}, "开始"), el("dd", { id: "fact-start" }, fmtTime(d.started_at, d.camera_timezone)),
        el("dt", {}, "持续"), el("dd", { id: "dwell" }, fmtDuration(dwellSeconds(d)), d.ended_at ? "" : "（仍在持续）"),
        el("dt", {}, "置信度"), el("dd", {}, `${Math.round(d.confidence * 100)}%`),
        el("dt", {}, "同地历史"), el("dd", {}, `${d.place_earlier_count} 件`)),
      el("div", { class: "frames" }, frame(d, 1, "① 首次发现"), frame(d, 2, "② 停留超时")),
      frameStrip(d),
      el("div", { class: "lower" },
        el("div", { class: "crop" }, el("h3", {}, "目标特写 ", d.unclassified ? el("span", { class: "tag unclassified" }, "待分类") : null, " ", el("kbd", {}, "Z"), " 看原图"),
          crop?.url ? el("img", { src: crop.url, alt: "目标特写", id: "crop", onclick: toggleZoom }) : el("div", { class: "noimg" }, "无特写")),
        el("div", { class: "history" }, el("h3", {}, "同一地点的早前案件"), similarBox),
        d.unclassified ? classifyPanel() : el("div", { class: "corrections" }, el("h3", {}, "标注更正（用于再训练）"),
          el("p", { class: "muted small" }, "在图上拖动框选漏检/错检目标；选择标签后按决定键一并提交。"),
          labelSel, corrList)),
      el("div", { class: "decide" },
        ...(d.unclassified ? kindButtons(choices) : [el("button", { class: "confirm", id: "btn-confirm", disabled: !canDecide, onclick: () => decide("confirm") },
          el("kbd", {}, "Y"), " 确认违规")]),
        ...reasonButtons,
        el("span", { class: "spacer" }),
        el("button", { onclick: prev, id: "btn-prev" }, el("kbd", {}, "K"), " 上一条"),
        el("button", { onclick: next, id: "btn-next" }, el("kbd", {}, "J"), " 下一条"),
        el("button", { onclick: undo, id: "btn-undo", disabled: !canDecide }, el("kbd", {}, "U"), " 撤销")),
      el("div", { class: "note", id: "note", hidden: true },
        el("input", { id: "note-input", placeholder: "请说明驳回原因（其他），回车提交，Esc 取消", maxlength: "2000" })),
      el("footer", { class: "legend" },
        "快捷键：",
        ...(d.unclassified ? choices.flatMap((k) => [el("kbd", {}, k.key), ` ${k.name_zh}　`])
          : [el("kbd", {}, "Y"), "/", el("kbd", {}, "Enter"), " 确认　"]),
        ...reasonsFor(d.kind, state.kinds).flatMap((r) => [el("kbd", {}, r.key), ` ${r.zh}　`]),
        el("kbd", {}, "J"), "/", el("kbd", {}, "→"), " 下一条　", el("kbd", {}, "K"), "/", el("kbd", {}, "←"), " 上一条　",
        el("kbd", {}, "U"), "/", el("kbd", {}, "Ctrl+Z"), " 撤销　", el("kbd", {}, "A"), ` 标注/原图（当前：${state.variant === "annotated" ? "标注" : "原图"}）　`,
        el("kbd", {}, "Z"), " 原图放大"),
      state.zoom && zoomEv?.url ? el("div", { class: "zoom", id: "zoom", onclick: toggleZoom },
        el("img", { src: zoomEv.url, alt: "停留超时帧原图", id: "zoom-img" }),
        el("p", { class: "zoom-hint" }, "原始分辨率 · 滚动查看 · 点击或 Esc 关闭")) : null,
    );
  }

  /** 待分类: what the reviewer does here, and the box they dragged (sent with the kind, for retraining). */
  function classifyPanel() {
    return el("div", { class: "corrections classify", id: "classify" },
      el("h3", {}, "待分类：选择违规类型"),
      el("p", { class: "muted small" }, "识别到未知物体。可先在图上拖动框选目标，再按类型键确认（该框与类型用于再训练）；数字键驳回。"),
      el("p", { class: state.classBox ? "classbox-set" : "muted small", id: "classbox-state" },
        state.classBox ? `目标框已调整：${state.classBox.bbox_xyxy.join(", ")}` : "目标框：沿用检测框"));
  }

  /** One key per kind in the decision bar: the case is confirmed as that kind. */
  function kindButtons(choices) {
    if (!choices.length) return [el("span", { class: "muted" }, "类型加载中…")];
    return choices.map((k) => el("button", {
      class: "confirm kind-key", dataset: { kind: k.id }, disabled: !canDecide, onclick: () => classify(k),
      title: `${k.gbt_code} ${k.gbt_name}`,
    }, el("kbd", {}, k.key), ` ${k.name_zh}`));
  }

  function classify(k) {
    decide("confirm", null, "", k);
  }

  const pickFrame = (d, seq) => {
    const pick = (variant) => d.evidence.find((e) => e.seq === seq && e.variant === variant && e.url);
    return pick(state.variant) || pick("annotated") || pick("clean");
  };

  /** The frame Z opens (the dwell frame ②, or one picked in the strip) at full resolution. */
  function mainFrame(d) {
    return pickFrame(d, state.zoomSeq) || pickFrame(d, 2) || pickFrame(d, 1);
  }

  /** Every evidence frame of the case in time order, when it has more than the two above (frames across the
   * dwell): the reviewer sees the object staying. A click opens the frame at full resolution. */
  function frameStrip(d) {
    // in time order: the legal moments ①② and the strip frames across the dwell (seq 1001..) interleave
    const at = (seq) => Date.parse(d.evidence.find((e) => e.seq === seq && e.frame_ts)?.frame_ts ?? "") || 0;
    const seqs = [...new Set(d.evidence.filter((e) => e.variant !== "crop").map((e) => e.seq))]
      .sort((x, y) => at(x) - at(y) || x - y);
    if (seqs.length <= 2) return null;
    return el("div", { class: "strip", id: "frame-strip" }, ...seqs.map((seq, i) => {
      const ev = pickFrame(d, seq);
      return el("figure", { class: "strip-frame", dataset: { seq: String(seq) } },
        ev ? el("img", { src: ev.url, alt: `第 ${i + 1} 帧`, onclick: () => { state.zoomSeq = seq; state.zoom = true; renderCase(d); } })
          : el("div", { class: "noimg" }, "上传中…"),
        el("figcaption", {}, ev ? fmtTime(ev.frame_ts, d.camera_timezone).slice(11) : "—"));
    }));
  }

  /** Open cases: the duration on screen grows every second (the same function computes it everywhere). */
  const ticker = setInterval(() => {
    const d = state.shown;
    const box = document.getElementById("dwell");
    if (!d || d.ended_at || !box || current()?.id !== d.id) return;
    box.firstChild.textContent = fmtDuration(dwellSeconds(d));
  }, 1000);

  /** Keep the lease while the reviewer looks at the case. */
  const reclaimer = setInterval(() => {
    const c = current();
    if (canDecide && c && state.claimed === c.id) post(`cases/${c.id}/claim`).catch(() => {});
  }, RECLAIM_MS);

  // ---- actions --------------------------------------------------------------------------------
  function decide(decision, reason = null, note = "", kind = null) {
    const c = current();
    if (!c || !canDecide || state.shown?.id !== c.id) return; // not yet on screen
    if (decision === "confirm" && c.unclassified && !kind) { toast("待分类案件：请按类型键选择违规类型（即确认），或按数字键驳回", "error"); return; }
    const body = { decision, duration_ms: Math.round(performance.now() - state.shownAt) };
    if (reason) body.reason = reason;
    if (note) body.note = note;
    if (kind) {
      body.kind = kind.id;
      if (state.classBox) { body.object_box = state.classBox.bbox_xyxy; body.object_seq = state.classBox.seq; }
      if (kind.classes.includes(state.label)) body.object_label = state.label;
    }
    const corrections = [...state.corrections];
    if (!kind && state.label && !corrections.some((k) => k.action === "add") && c.bbox_xyxy.length === 4) {
      corrections.push({ action: "relabel", bbox_xyxy: c.bbox_xyxy, label: state.label, seq: 2 });
    }
    if (corrections.length) body.corrections = corrections;
    const record = { c, decision, reason };
    // sent once the claim is ours; a claim lost to another reviewer sends nothing (that case is skipped)
    record.request = (state.claiming.get(c.id) || Promise.resolve(true)).then((mine) => (mine
      ? post(`cases/${c.id}/verify`, body) : Promise.reject(Object.assign(new Error("claim lost"), { lost: true }))));
    if (state.claimed === c.id) state.claimed = null; // the decision gives the claim back
    state.decided.push(record);
    state.queue.splice(state.index, 1);
    state.total = Math.max(state.total - 1, 0);
    state.done += 1;
    if (state.index >= state.queue.length) state.index = Math.max(state.queue.length - 1, 0);
    show(); // the next case is already loaded: show it before the server answers
    const what = kind ? "已分类并确认" : decision === "confirm" ? "已确认" : `已驳回（${REASONS.find((r) => r.code === reason)?.zh}）`;
    record.request.then(() => toast(`${what}：${kind ? kind.name_zh : kindName(c.kind, c.kind_name_zh)} · ${c.camera_name || c.camera_id}`)).catch((err) => {
      state.decided = state.decided.filter((r) => r !== record);
      state.done -= 1;
      if (err.lost) return; // the claim's own message is on screen
      if (err.status === 409) { toast(err.message, "error"); return; } // someone else has it: already moved on
      toast(`提交失败：${err.message}`, "error");
      state.queue.splice(state.index, 0, c);
      state.total += 1;
      show();
    });
  }

  async function undo() {
    const record = state.decided.pop();
    if (!record) { toast("没有可撤销的决定"); return; }
    let back;
    try {
      await record.request; // the decision must have landed before it can be undone
      back = await post(`cases/${record.c.id}/undo`); // as it is now: a classification is undone too
    } catch (err) {
      toast(`撤销失败：${err.message}`, "error");
      return;
    }
    state.details.delete(record.c.id);
    state.queue.splice(state.index, 0, back);
    state.total += 1;
    state.done -= 1;
    toast(`已撤销：${kindName(back.kind, back.kind_name_zh)} · ${back.camera_name || back.camera_id} 回到队列`);
    show();
  }

  function next() { if (state.index < state.queue.length - 1) { state.index += 1; show(); } }
  function prev() { if (state.index > 0) { state.index -= 1; show(); } }
  function rerender() {
    const c = current();
    if (c) detail(c.id).then(renderCase).catch(() => {});
  }
  function toggleZoom() {
    if (!current()) return;
    state.zoom = !state.zoom;
    if (!state.zoom) state.zoomSeq = 2;
    rerender();
  }

  function openNote() {
    const box = document.getElementById("note");
    if (!box) return;
    state.noteOpen = true;
    box.hidden = false;
    const input = document.getElementById("note-input");
    input.value = "";
    input.focus();
    input.onkeydown = (e) => {
      if (e.key === "Enter" && input.value.trim()) { e.preventDefault(); decide("reject", "other", input.value.trim()); }
      if (e.key === "Escape") { e.preventDefault(); box.hidden = true; state.noteOpen = false; input.blur(); }
      e.stopPropagation();
    };
  }

  function onKey(e) {
    const t = e.target;
    if (t instanceof HTMLInputElement || t instanceof HTMLSelectElement || t instanceof HTMLTextAreaElement) return;
    if (e.altKey || e.metaKey) return;
    const key = e.key;
    if (e.ctrlKey) {
      if (key === "z" || key === "Z") { e.preventDefault(); undo(); }
      return;
    }
    const reason = reasonsFor(current()?.kind, state.kinds).find((r) => r.key === key);
    const kind = current()?.unclassified ? kindChoices(state.kinds).find((k) => k.key === key.toUpperCase()) : null;
    if (kind) classify(kind);
    else if (key === "y" || key === "Y" || key === "Enter") decide("confirm");
    else if (reason) (reason.code === "other" ? openNote() : decide("reject", reason.code));
    else if (key === "j" || key === "J" || key === "ArrowRight" || key === "ArrowDown") next();
    else if (key === "k" || key === "K" || key === "ArrowLeft" || key === "ArrowUp") prev();
    else if (key === "u" || key === "U") undo();
    else if (key === "a" || key === "A") { state.variant = state.variant === "annotated" ? "clean" : "annotated"; rerender(); }
    else if (key === "z" || key === "Z") toggleZoom();
    else if (key === "Escape" && state.zoom) toggleZoom();
    else return;
    e.preventDefault();
  }

  document.addEventListener("keydown", onKey);
  const unsubscribe = onQueueChange(() => { refresh(); });
  reload();
  return () => {
    alive = false;
    document.removeEventListener("keydown", onKey);
    unsubscribe();
    clearInterval(ticker);
    clearInterval(reclaimer);
    releaseClaim();
  };
}
