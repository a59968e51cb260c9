// Cameras: live status, the latest snapshot with zones, and (admins) drawing/editing zone polygons.
import { KIND_ZH, REASONS, ROAD_CLASS_ZH, fill, ZONE_KIND_ZH, auth, del, el, fmtTime, get, imageUrl, put, svg, toast } from "./api.js";

const STATE_ZH = { online: "在线", degraded: "降级", offline: "离线" };
const INVALID_ORIGIN_ZH = {
  file: "摄像头配置文件中此项无效，未启动；修正文件后重启处理节点",
  database: "数据库中的配置无效；管理员可通过接口重新保存",
};

export function mountCameras(root, [cameraId]) {
  if (cameraId) return mountCamera(root, cameraId);
  const grid = el("div", { class: "cam-grid", id: "cameras" }, el("p", { class: "muted" }, "加载中…"));
  root.append(el("section", { class: "page" }, el("h2", {}, "摄像头"), grid));
  get("cameras").then((res) => {
    if (!res.data.length && !res.invalid.length) { grid.replaceChildren(el("p", { class: "empty" }, "尚未配置摄像头")); return; }
    grid.replaceChildren(...res.data.map((c) => el("a", { class: "cam-card", href: `#/cameras/${encodeURIComponent(c.id)}` },
      el("div", { class: "cam-title" }, el("b", {}, c.name || c.id), el("span", { class: `state ${c.status.state}` }, STATE_ZH[c.status.state] || c.status.state)),
      el("div", { class: "muted" }, c.id, " · ", c.location.address || "—"),
      el("div", { class: "small" }, `输入 ${c.status.input_fps.toFixed(1)} fps · 检测 ${c.status.detect_fps.toFixed(1)} fps · 区域 ${c.zones.length} 个`),
      el("div", { class: "small muted" }, `最后画面 ${fmtTime(c.status.last_frame_at)}`),
      c.status.error ? el("div", { class: "small error" }, c.status.error) : null)),
    // cameras that cannot run as configured (an invalid camera of the cameras file, a row that no longer
    // validates): no page to open, only the error to fix
    ...res.invalid.map((c) => el("div", { class: "cam-card invalid", "data-camera": c.id },
      el("div", { class: "cam-title" }, el("b", {}, c.id), el("span", { class: "state offline" }, "配置无效")),
      el("div", { class: "muted" }, INVALID_ORIGIN_ZH[c.origin] || c.origin),
      el("div", { class: "small error" }, `配置错误：${c.error}`))));
  }).catch((err) => grid.replaceChildren(el("p", { class: "error" }, err.message)));
  return null;
}

function mountCamera(root, cameraId) {
  const isAdmin = auth.user.role === "admin";
  const ed = { cam: null, zones: [], selected: null, draft: null, drag: null, snapshot: null };
  const stage = el("div", { class: "stage", id: "stage" }, el("p", { class: "muted" }, "加载画面…"));
  const side = el("div", { class: "zone-side" });
  const info = el("div", { class: "cam-info" });
  const memory = el("section", { class: "memory", id: "memory" });
  root.append(el("section", { class: "page camera-page" },
    el("p", {}, el("a", { href: "#/cameras" }, "← 全部摄像头")), info,
    el("div", { class: "cam-body" }, stage, side), memory));

  async function load() {
    try {
      ed.cam = await get(`cameras/${encodeURIComponent(cameraId)}`);
    } catch (err) { info.replaceChildren(el("p", { class: "error" }, err.message)); return; }
    ed.zones = ed.cam.zones.map((z) => ({ ...z }));
    renderInfo();
    renderSide();
    if (ed.cam.status.has_snapshot) {
      try {
        ed.snapshot = await imageUrl(`/api/v1/cameras/${encodeURIComponent(cameraId)}/snapshot`, { zones: false });
      } catch (err) { toast(err.message, "error"); }
    }
    renderStage();
    renderSide();
  }

  function renderInfo() {
    const c = ed.cam;
    const s = c.status;
    fill(info,
      el("h2", {}, c.name || c.id, " ", el("span", { class: `state ${s.state}` }, STATE_ZH[s.state] || s.state)),
      el("dl", { class: "meta" },
        el("dt", {}, "编号"), el("dd", {}, c.id),
        el("dt", {}, "地点"), el("dd", {}, c.location.address || "—"),
        el("dt", {}, "视频源"), el("dd", {}, c.source.url, c.source.has_credentials ? el("span", { class: "muted" }, "（已存凭据，不显示）") : ""),
        el("dt", {}, "处理节点"), el("dd", {}, s.worker_id || "—"),
        el("dt", {}, "帧率"), el("dd", {}, `输入 ${s.input_fps.toFixed(1)} / 检测 ${s.detect_fps.toFixed(1)} fps`),
        el("dt", {}, "重连/丢帧"), el("dd", {}, `${s.reconnects} / ${s.dropped_frames}`),
        el("dt", {}, "最后画面"), el("dd", {}, fmtTime(s.last_frame_at)),
        el("dt", {}, "模型分组"), el("dd", {}, c.group)),
      s.error ? el("p", { class: "error" }, s.error) : null);
  }

  // ---- the snapshot with zones, and the polygon editor -----------------------------------------
  function relPoint(e, box) {
    const r = box.getBoundingClientRect();
    const clamp = (v) => Math.round(Math.min(Math.max(v, 0), 1) * 10000) / 10000;
    return [clamp((e.clientX - r.left) / r.width), clamp((e.clientY - r.top) / r.height)];
  }

  function renderStage() {
    if (!ed.snapshot) {
      stage.replaceChildren(el("div", { class: "noimg big" }, "暂无画面：摄像头在线后由处理节点保存快照"));
      return;
    }
    const overlay = svg("svg", { class: "overlay editor", viewBox: "0 0 1 1", preserveAspectRatio: "none", id: "zone-svg" });
    for (const z of ed.zones) {
      if (ed.draft && ed.draft.id === z.id) continue;
      overlay.append(svg("polygon", {
        class: `zone kind-${z.kind} ${ed.selected === z.id ? "selected" : ""}`,
        points: z.polygon.map((p) => p.join(",")).join(" "),
        onclick: (e) => { if (ed.draft) return; e.stopPropagation(); ed.selected = z.id; renderStage(); renderSide(); },
      }, svg("title", {}, `${z.id} ${ZONE_KIND_ZH[z.kind] || z.kind}`)));
    }
    if (ed.draft) {
      const pts = ed.draft.polygon;
      overlay.append(svg(ed.draft.closed ? "polygon" : "polyline", {
        class: `draft ${ed.draft.closed ? "closed" : ""}`, points: pts.map((p) => p.join(",")).join(" "),
      }));
      pts.forEach((p, i) => overlay.append(svg("circle", {
        class: `handle ${i === 0 ? "first" : ""}`, cx: p[0], cy: p[1], r: 0.009,
        onmousedown: (e) => { e.stopPropagation(); e.preventDefault(); if (ed.draft.closed) ed.drag = i; else if (i === 0 && pts.length >= 3) closeDraft(); },
      })));
    }
    const img = el("img", { src: ed.snapshot, alt: "摄像头快照", draggable: "false", id: "snapshot" });
    const box = el("div", { class: "imgwrap snapshot" }, img, overlay);
    img.addEventListener("load", () => fitSnapshot(img, box));
    if (isAdmin) {
      box.addEventListener("click", (e) => {
        if (!ed.draft || ed.draft.closed) return;
        ed.draft.polygon.push(relPoint(e, box));
        renderStage();
        renderSide();
      });
      box.addEventListener("mousemove", (e) => {
        if (ed.drag === null || !ed.draft) return;
        ed.draft.polygon[ed.drag] = relPoint(e, box);
        const poly = overlay.querySelector(".draft");
        poly.setAttribute("points", ed.draft.polygon.map((p) => p.join(",")).join(" "));
        const h = overlay.querySelectorAll(".handle")[ed.drag];
        h.setAttribute("cx", ed.draft.polygon[ed.drag][0]); h.setAttribute("cy", ed.draft.polygon[ed.drag][1]);
      });
      const endDrag = () => { ed.drag = null; };
      box.addEventListener("mouseup", endDrag);
      box.addEventListener("mouseleave", endDrag);
    }
    fill(stage, box, ed.draft && !ed.draft.closed
      ? el("p", { class: "hint" }, `点击画面添加顶点（已 ${ed.draft.polygon.length} 个）；点击第一个顶点或“闭合”完成。`)
      : ed.draft ? el("p", { class: "hint" }, "拖动顶点可调整形状；填写右侧信息后保存。") : null);
  }

  function closeDraft() {
    if (ed.draft.polygon.length < 3) { toast("至少需要 3 个顶点", "error"); return; }
    ed.draft.closed = true;
    renderStage();
    renderSide();
  }

  function startDraft(zone) {
    ed.selected = zone ? zone.id : null;
    ed.draft = zone
      ? { ...zone, polygon: zone.polygon.map((p) => [...p]), closed: true, existing: true }
      : { id: nextZoneId(), name: "", kind: "no_vending", road_class: "secondary", polygon: [], closed: false, existing: false };
    renderStage();
    renderSide();
  }

  function nextZoneId() {
    let n = ed.zones.length + 1;
    while (ed.zones.some((z) => z.id === `zone-${n}`)) n += 1;
    return `zone-${n}`;
  }

  async function saveDraft() {
    const d = ed.draft;
    const form = side.querySelector("form");
    d.id = form.elements.zid.value.trim();
    d.name = form.elements.zname.value.trim();
    d.kind = form.elements.zkind.value;
    d.road_class = form.elements.zroad.value;
    const { closed, existing, ...zone } = d;
    try {
      const saved = await put(`cameras/${encodeURIComponent(cameraId)}/zones/${encodeURIComponent(zone.id)}`, zone);
      const i = ed.zones.findIndex((z) => z.id === saved.id);
      if (i >= 0) ed.zones[i] = saved; else ed.zones.push(saved);
      ed.draft = null;
      ed.selected = saved.id;
      toast(`区域 ${saved.id} 已保存`);
    } catch (err) {
      side.querySelector(".form-error").textContent = zoneErrorZh(err.message);
      return;
    }
    renderStage();
    renderSide();
  }

  async function deleteZone(zone) {
    if (!confirm(`删除区域 ${zone.id}？`)) return;
    try {
      await del(`cameras/${encodeURIComponent(cameraId)}/zones/${encodeURIComponent(zone.id)}`);
      ed.zones = ed.zones.filter((z) => z.id !== zone.id);
      ed.selected = null;
      toast(`区域 ${zone.id} 已删除`);
    } catch (err) { toast(err.message, "error"); }
    renderStage();
    renderSide();
  }

  function renderSide() {
    const items = ed.zones.map((z) => el("li", {
      class: `zone-item ${ed.selected === z.id ? "selected" : ""}`, dataset: { zone: z.id },
      onclick: () => { if (!ed.draft) { ed.selected = z.id; renderStage(); renderSide(); } },
    },
    el("i", { class: `swatch kind-${z.kind}` }), el("b", {}, z.id), ` ${z.name || ""}`,
    el("div", { class: "small muted" }, `${ZONE_KIND_ZH[z.kind] || z.kind} · ${ROAD_CLASS_ZH[z.road_class] || z.road_class}`,
      z.schedule ? ` · ${z.schedule.windows.join(", ")}` : ""),
    isAdmin && !ed.draft && ed.selected === z.id ? el("div", { class: "row" },
      el("button", { onclick: (e) => { e.stopPropagation(); startDraft(z); } }, "编辑形状"),
      el("button", { class: "danger", onclick: (e) => { e.stopPropagation(); deleteZone(z); } }, "删除")) : null));

    const parts = [el("h3", {}, `区域（${ed.zones.length}）`), el("ul", { class: "zones" }, ...items)];
    if (isAdmin && !ed.draft) {
      parts.push(el("button", { class: "primary", id: "new-zone", disabled: !ed.snapshot, onclick: () => startDraft(null) }, "＋ 新建区域"));
    }
    if (ed.draft) {
      const d = ed.draft;
      const kindSel = el("select", { name: "zkind", id: "zone-kind" }, ...Object.entries(ZONE_KIND_ZH).map(([k, v]) => el("option", { value: k }, v)));
      kindSel.value = d.kind;
      const roadSel = el("select", { name: "zroad", id: "zone-road" }, ...Object.entries(ROAD_CLASS_ZH).map(([k, v]) => el("option", { value: k }, v)));
      roadSel.value = d.road_class;
      parts.push(el("form", { class: "zone-form", onsubmit: (e) => { e.preventDefault(); saveDraft(); } },
        el("h3", {}, d.existing ? `编辑区域 ${d.id}` : "新建区域"),
        el("label", {}, "区域编号", el("input", { name: "zid", id: "zone-id", value: d.id, required: true, readonly: d.existing || null, pattern: "[A-Za-z0-9_.\\-]{1,64}" })),
        el("label", {}, "名称", el("input", { name: "zname", id: "zone-name", value: d.name || "", placeholder: "如：人民路北口" })),
        el("label", {}, "类型", kindSel),
        el("label", {}, "道路等级", roadSel),
        el("p", { class: "small muted" }, `顶点 ${d.polygon.length} 个`),
        el("div", { class: "row" },
          d.closed ? null : el("button", { type: "button", id: "close-zone", onclick: closeDraft, disabled: d.polygon.length < 3 }, "闭合"),
          d.closed ? null : el("button", { type: "button", onclick: () => { d.polygon.pop(); renderStage(); renderSide(); } }, "撤销顶点"),
          el("button", { type: "submit", class: "primary", id: "save-zone", disabled: !d.closed }, "保存"),
          el("button", { type: "button", onclick: () => { ed.draft = null; renderStage(); renderSide(); } }, "取消")),
        el("p", { class: "form-error error", role: "alert" })));
    }
    side.replaceChildren(...parts);
  }

  // ---- false-alarm memory: objects reviewers rejected as 误检 / 固定设施, no longer reported -------------
  const MEMORY_STATE_ZH = { active: "生效中", expired: "已过期", gone: "物体已移走" };
  async function loadMemory() {
    let res;
    try {
      res = await get(`cameras/${encodeURIComponent(cameraId)}/memory`);
    } catch (err) { fill(memory, el("h3", {}, "误报记忆"), el("p", { class: "error" }, err.message)); return; }
    const rows = res.data.map((m) => el("tr", { class: `memory-entry ${m.state}`, dataset: { entry: m.id } },
      el("td", {}, m.crop_url ? el("img", { src: m.crop_url, alt: "目标特写", class: "memory-crop" }) : el("span", { class: "muted" }, "无特写")),
      el("td", {}, KIND_ZH[m.kind] || m.kind, el("div", { class: "small muted" }, REASONS.find((r) => r.code === m.reason)?.zh || m.reason)),
      el("td", { class: "memory-reviewer" }, m.reviewer),
      el("td", { class: "memory-count" }, `${m.suppressed_count} 次`),
      el("td", { class: "memory-last" }, m.last_suppressed_at ? fmtTime(m.last_suppressed_at) : "—"),
      el("td", {}, MEMORY_STATE_ZH[m.state] || m.state, el("div", { class: "small muted" }, `至 ${fmtTime(m.expires_at)}`)),
      el("td", {}, isAdmin ? el("button", { class: "danger memory-delete", onclick: () => deleteMemory(m) }, "删除") : null)));
    fill(memory,
      el("h3", {}, `误报记忆（${res.count}）`),
      el("p", { class: "small muted" }, "审核员以“误检”或“固定设施/常驻物体”驳回的目标：同一位置、外观相同的目标不再立案；外观不同的目标照常立案。"),
      res.count
        ? el("table", { class: "memory-table" },
          el("thead", {}, el("tr", {}, ...["特写", "类型", "审核员", "已屏蔽", "最近屏蔽", "状态", ""].map((h) => el("th", {}, h)))),
          el("tbody", {}, ...rows))
        : el("p", { class: "empty" }, "暂无记忆"));
  }

  async function deleteMemory(m) {
    if (!confirm("删除这条误报记忆？之后该目标会重新立案。")) return;
    try {
      await del(`cameras/${encodeURIComponent(cameraId)}/memory/${encodeURIComponent(m.id)}`);
      toast("误报记忆已删除");
    } catch (err) { toast(err.message, "error"); }
    loadMemory();
  }

  const refit = () => {
    const img = stage.querySelector("#snapshot");
    if (img && img.complete) fitSnapshot(img, img.parentElement);
  };
  window.addEventListener("resize", refit);
  load();
  loadMemory();
  return () => {
    window.removeEventListener("resize", refit);
    if (ed.snapshot) URL.revokeObjectURL(ed.snapshot);
  };
}

// Room kept under the snapshot for the drawing hint, px.
const HINT_ROOM_PX = 44;

// The whole snapshot fits the window (vertices at the bottom stay in view): its width is capped so that its
// height is what is left under everything above it (header, camera details, an error line) at the top of
// the page, less the hint line under it.
function fitSnapshot(img, box) {
  const aspect = img.naturalWidth / Math.max(1, img.naturalHeight);
  const top = box.getBoundingClientRect().top + window.scrollY;
  const room = Math.max(240, window.innerHeight - top - HINT_ROOM_PX);
  box.style.maxWidth = `${Math.floor(room * aspect)}px`;
}

/** A zone the server refuses, in Chinese with its reason (vision.config.verify_polygon's messages). */
export function zoneErrorZh(message) {
  const rules = [
    [/zone '([^']*)' polygon self-intersects at point (\d+)[^;]*;?.*/, (_, z, n) => `区域 ${z} 的多边形自相交（第 ${Number(n) + 1} 个顶点附近的边相交）；请沿区域边界按顺序点选顶点`],
    [/zone '([^']*)' polygon has zero area.*/, (_, z) => `区域 ${z} 的多边形面积为零：所有顶点在一条直线上`],
    [/zone '([^']*)' polygon has (\d+) points.*/, (_, z, n) => `区域 ${z} 只有 ${n} 个顶点；至少需要 3 个`],
    [/zone '([^']*)' point (\d+) \([^)]*\) is outside \[0,1\].*/, (_, z, n) => `区域 ${z} 的第 ${Number(n) + 1} 个顶点超出画面`],
  ];
  for (const [re, zh] of rules) if (re.test(message)) return message.replace(re, zh);
  return message;
}
