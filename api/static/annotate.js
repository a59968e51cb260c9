// Annotation queue of real frames (issue 14): the frame large, the model's proposals to accept or correct,
// boxes drawn with the mouse and labelled by digit. Keys: 1-8 class of the selected box, Backspace deletes it,
// Tab selects the next box, Enter submits and takes the next frame, S skips, N marks "nothing here".
import { DEFAULT_TZ, OBJECT_ZH, del, el, fill, fmtTime, get, post, svg, toast } from "./api.js";

/** The eight classes in the detector's order (vision.types.OBJECT_KINDS): digit n is CLASSES[n - 1]. */
const CLASSES = ["person", "bicycle", "e_bike", "vending_stall", "garbage", "trash_bin", "grill", "smoke"];
const REASON_ZH = { near_threshold: "模型拿不准（接近阈值）", unknown_region: "未知静止物体", periodic: "定时抽样" };
const STATUS_ZH = { pending: "待标注", labelled: "已标注", negative: "无目标", skipped: "已跳过" };
const MIN_BOX_PX = 4; // a shorter drag is a click (selects), not a box

function ensureStyles() {
  // the UI's CSP allows our own style sheets only (no inline <style>): load this page's sheet once
  if (document.getElementById("annotate-css")) return;
  document.head.append(el("link", { id: "annotate-css", rel: "stylesheet", href: "/ui/annotate.css" }));
}

export function mountAnnotate(root) {
  ensureStyles();
  const state = { item: null, boxes: [], selected: -1, drag: null, busy: false, stats: null, alive: true, view: null };
  const section = el("section", { id: "annotate", class: "annotate", dataset: { state: "loading" } });
  fill(root, section);

  const canLabel = ["admin", "reviewer"].includes(document.body.dataset.role);

  async function loadNext() {
    state.busy = true;
    section.dataset.state = "loading";
    try {
      const [next, stats] = await Promise.all([get("annotations/next"), get("annotations/stats")]);
      if (!state.alive) return;
      state.stats = stats;
      state.item = next.item;
      state.boxes = next.item
        ? next.item.proposals.map((p) => ({
            label: p.source === "model" ? p.label : null, // an unknown region needs the reviewer's class
            xyxy: p.xyxy.slice(),
            origin: p.source === "model" ? "model" : "unknown",
            score: p.score,
          }))
        : [];
      state.selected = state.boxes.findIndex((b) => !b.label);
      render();
    } catch (err) {
      if (state.alive) { toast(err.message, "error"); fill(section, el("p", { class: "error" }, err.message)); }
    } finally {
      state.busy = false;
    }
  }

  async function loadStatsOnly() {
    try {
      state.stats = await get("annotations/stats");
      if (state.alive) render();
    } catch (err) {
      if (state.alive) toast(err.message, "error");
    }
  }

  function statsLine() {
    const s = state.stats;
    if (!s) return null;
    return el("p", { class: "ann-stats muted", id: "ann-stats" },
      Object.entries(STATUS_ZH).map(([k, zh]) => `${zh} ${s.by_status[k] ?? 0}`).join(" · "),
      ` · 已标注框 ${s.boxes}`);
  }

  function render() {
    const item = state.item;
    if (!item) {
      section.dataset.state = "empty";
      delete section.dataset.itemId;
      fill(section,
        el("div", { class: "empty" },
          el("p", {}, canLabel ? "暂无待标注的画面" : "只有审核员可以标注画面"),
          el("p", { class: "muted" }, "摄像头会自动抽取值得标注的画面：模型拿不准的目标、未知的静止物体、不同时段的定时抽样。")),
        statsLine());
      return;
    }
    section.dataset.state = "ready";
    section.dataset.itemId = item.id;
    const img = el("img", { id: "ann-img", src: item.image_url, alt: "待标注画面", draggable: "false" });
    const overlay = svg("svg", {
      id: "ann-overlay", viewBox: `0 0 ${item.width} ${item.height}`, preserveAspectRatio: "none",
      onmousedown: onMouseDown,
    });
    const list = el("ol", { id: "ann-boxes" });
    const title = el("h3", { id: "ann-boxes-title" });
    state.view = { overlay, list, title };
    fill(section,
      el("div", { class: "ann-head" },
        el("strong", {}, `摄像头 ${item.camera_id}`),
        el("span", {}, fmtTime(item.frame_at, DEFAULT_TZ)),
        el("span", { class: "tag" }, REASON_ZH[item.reason] || item.reason),
        el("span", { class: "muted" }, `时段 ${item.time_bucket} · 模型 ${item.model_version || "—"}`)),
      el("div", { class: "ann-body" },
        el("div", { class: "ann-stage", id: "ann-stage" }, img, overlay),
        el("aside", { class: "ann-side" },
          title,
          list,
          el("h3", {}, "类别"),
          el("ol", { class: "ann-classes" }, CLASSES.map((c, i) => el("li", {}, el("kbd", {}, String(i + 1)), " ", OBJECT_ZH[c]))),
          el("p", { class: "muted ann-keys" },
            "拖动鼠标画框 · 点击选中 · 数字键定类别 · Backspace 删除选中框 · Tab 下一个框 · ",
            el("kbd", {}, "Enter"), " 提交并下一张 · ", el("kbd", {}, "S"), " 跳过 · ", el("kbd", {}, "N"), " 画面中无目标"),
          el("div", { class: "ann-actions" },
            el("button", { class: "primary", id: "ann-submit", onclick: submit }, "提交（Enter）"),
            el("button", { id: "ann-skip", onclick: skip }, "跳过（S）"),
            el("button", { id: "ann-negative", onclick: nothingHere }, "无目标（N）")),
          statsLine())));
    refresh();
  }

  function origin(b) {
    if (b.origin === "drawn") return "（手画）";
    return b.origin === "unknown" ? "（未知物体）" : `（模型 ${b.score.toFixed(2)}）`;
  }

  /** Redraw the boxes and their list (the frame itself stays). */
  function refresh() {
    const { overlay, list, title } = state.view;
    section.dataset.boxes = String(state.boxes.length);
    section.dataset.labelled = String(state.boxes.filter((b) => b.label).length);
    drawBoxes(overlay);
    title.textContent = `框（${state.boxes.length}）`;
    fill(list, state.boxes.map((b, i) => el("li", {
      class: i === state.selected ? "selected" : "",
      dataset: { index: String(i), label: b.label || "" },
      onclick: () => select(i),
    }, b.label ? OBJECT_ZH[b.label] : "未分类", origin(b))));
  }

  function drawBoxes(overlay) {
    const item = state.item;
    const stroke = Math.max(2, Math.round(item.width / 400));
    overlay.replaceChildren(...state.boxes.map((b, i) => {
      const [x1, y1, x2, y2] = b.xyxy;
      const cls = ["ann-box", b.origin, i === state.selected ? "selected" : "", b.label ? "" : "unlabelled"].join(" ");
      return svg("g", { class: cls, "data-index": String(i) },
        svg("rect", { x: x1, y: y1, width: x2 - x1, height: y2 - y1, "stroke-width": stroke }),
        svg("text", { x: x1 + 2, y: Math.max(y1 - 4, 12), "font-size": Math.max(12, Math.round(item.width / 60)) },
          b.label ? OBJECT_ZH[b.label] : "?"));
    }));
  }

  function select(i) {
    state.selected = i;
    refresh();
  }

  function toImage(ev) {
    const r = state.view.overlay.getBoundingClientRect();
    const x = ((ev.clientX - r.left) / r.width) * state.item.width;
    const y = ((ev.clientY - r.top) / r.height) * state.item.height;
    return [Math.min(Math.max(x, 0), state.item.width), Math.min(Math.max(y, 0), state.item.height)];
  }

  function onMouseDown(ev) {
    if (ev.button !== 0 || !state.item) return;
    ev.preventDefault();
    const start = toImage(ev);
    const hit = ev.target.closest?.("g.ann-box");
    state.drag = { start, hit: hit ? Number(hit.dataset.index) : -1, rect: null };
    window.addEventListener("mousemove", onMouseMove);
    window.addEventListener("mouseup", onMouseUp, { once: true });
  }

  function onMouseMove(ev) {
    const d = state.drag;
    if (!d) return;
    const [x, y] = toImage(ev);
    const { overlay } = state.view;
    if (!d.rect) {
      d.rect = svg("rect", { class: "ann-drawing", "stroke-width": Math.max(2, Math.round(state.item.width / 400)) });
      overlay.append(d.rect);
    }
    d.rect.setAttribute("x", Math.min(d.start[0], x));
    d.rect.setAttribute("y", Math.min(d.start[1], y));
    d.rect.setAttribute("width", Math.abs(x - d.start[0]));
    d.rect.setAttribute("height", Math.abs(y - d.start[1]));
  }

  function onMouseUp(ev) {
    window.removeEventListener("mousemove", onMouseMove);
    const d = state.drag;
    state.drag = null;
    if (!d || !state.item) return;
    const [x, y] = toImage(ev);
    const w = Math.abs(x - d.start[0]);
    const h = Math.abs(y - d.start[1]);
    if (w < MIN_BOX_PX || h < MIN_BOX_PX) {
      select(d.hit); // a click: select the box under it (or none)
      return;
    }
    const xyxy = [Math.min(d.start[0], x), Math.min(d.start[1], y), Math.max(d.start[0], x), Math.max(d.start[1], y)]
      .map((v) => Math.round(v * 10) / 10);
    state.boxes.push({ label: null, xyxy, origin: "drawn", score: 1 });
    select(state.boxes.length - 1);
  }

  function setLabel(digit) {
    const label = CLASSES[digit - 1];
    if (state.selected < 0 || !state.boxes[state.selected]) {
      toast("请先画一个框或点击选中一个框，再按数字键定类别", "error");
      return;
    }
    state.boxes[state.selected].label = label;
    // move on to the next box without a class, so a reviewer can label proposals in a row
    const next = state.boxes.findIndex((b) => !b.label);
    state.selected = next >= 0 ? next : state.selected;
    refresh();
  }

  function deleteSelected() {
    if (state.selected < 0 || !state.boxes[state.selected]) return;
    state.boxes.splice(state.selected, 1);
    state.selected = Math.min(state.selected, state.boxes.length - 1);
    refresh();
  }

  async function act(fn, done) {
    if (state.busy || !state.item) return;
    state.busy = true;
    section.dataset.state = "saving";
    try {
      await fn(state.item.id);
      toast(done);
    } catch (err) {
      state.busy = false;
      section.dataset.state = "ready";
      toast(err.message, "error");
      if (err.status === 409) await loadNext(); // someone else's or already done: take another
      return;
    }
    state.busy = false;
    await loadNext();
  }

  function submit() {
    const missing = state.boxes.findIndex((b) => !b.label);
    if (missing >= 0) {
      select(missing);
      toast(`第 ${missing + 1} 个框还没有类别：按 1-8 选择类别，或按 Backspace 删除`, "error");
      return;
    }
    const boxes = state.boxes.map((b) => ({ label: b.label, xyxy: b.xyxy }));
    act((id) => post(`annotations/${id}/labels`, { boxes }), boxes.length ? `已提交 ${boxes.length} 个框` : "已标为无目标");
  }
  const skip = () => act((id) => post(`annotations/${id}/skip`), "已跳过");
  const nothingHere = () => act((id) => post(`annotations/${id}/negative`), "已标为无目标");

  function onKey(ev) {
    if (ev.target.closest?.("input, textarea, select") || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (!state.item || section.dataset.state !== "ready") return;
    const k = ev.key;
    if (k >= "1" && k <= "8") setLabel(Number(k));
    else if (k === "Backspace" || k === "Delete") deleteSelected();
    else if (k === "Enter") submit();
    else if (k === "s" || k === "S") skip();
    else if (k === "n" || k === "N") nothingHere();
    else if (k === "Tab" && state.boxes.length) select((state.selected + 1) % state.boxes.length);
    else if (k === "Escape") select(-1);
    else return;
    ev.preventDefault();
  }

  document.addEventListener("keydown", onKey);
  if (canLabel) loadNext();
  else { state.item = null; loadStatsOnly(); }

  return () => {
    state.alive = false;
    document.removeEventListener("keydown", onKey);
    window.removeEventListener("mousemove", onMouseMove);
    if (canLabel && state.item) del("annotations/lease").catch(() => {}); // back to the queue for others
  };
}
