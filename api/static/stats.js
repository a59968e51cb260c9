// Statistics: the bureau's figures and three charts drawn as inline SVG (no chart library).
import { KIND_ZH, el, get, kindName, loadKinds, request, svg, toast } from "./api.js";

const KIND_COLOURS = {
  street_vending: "#d9534f", exposed_garbage: "#8e6c3a", bike_misparking: "#2f7fd1", open_air_barbecue: "#f0a030",
};
// colours of configured kinds, in the order of their ids (stable from one range to the next)
const PALETTE = ["#16a085", "#8e44ad", "#2c3e50", "#c0392b", "#27ae60", "#d35400", "#7f8c8d", "#e84393", "#00838f", "#6d4c41"];

/** The kinds a statistics answer shows, each with its Chinese name and colour: the built-in four, then every
 * other kind found in its rows (configured kinds included). */
export function statsKinds(s) {
  const names = new Map(Object.keys(KIND_COLOURS).map((k) => [k, KIND_ZH[k]]));
  const others = [...new Set(s.rows.map((r) => r.kind))].filter((k) => !(k in KIND_COLOURS)).sort();
  for (const r of s.rows) names.set(r.kind, kindName(r.kind, r.kind_name_zh));
  return [...names.keys()].map((id) => ({
    id, name: names.get(id), colour: KIND_COLOURS[id] || PALETTE[others.indexOf(id) % PALETTE.length],
  }));
}

export function mountStats(root) {
  const until = new Date();
  const since = new Date(until.getTime() - 30 * 86400e3);
  // the day in Beijing time, as the report's days are (a UTC date would end "today" at 08:00 Beijing)
  const day = (d) => new Date(d.getTime() + 8 * 3600e3).toISOString().slice(0, 10);
  const sinceIn = el("input", { type: "date", id: "stats-since", value: day(since) });
  const untilIn = el("input", { type: "date", id: "stats-until", value: day(until) });
  const kindSel = el("select", { id: "stats-kind", "aria-label": "类型" }, el("option", { value: "" }, "全部类型"));
  loadKinds(true).then((kinds) => kindSel.append(...kinds.map((k) => el("option", { value: k.id }, `${k.name_zh}（${k.gbt_code}）`))))
    .catch((err) => toast(err.message, "error"));
  const body = el("div", { id: "stats-body" }, el("p", { class: "muted" }, "加载中…"));
  const range = () => ({
    since: `${sinceIn.value}T00:00:00+08:00`,
    until: new Date(new Date(`${untilIn.value}T00:00:00+08:00`).getTime() + 86400e3).toISOString(),
    kind: kindSel.value || undefined,
  });
  root.append(el("section", { class: "page stats-page" },
    el("div", { class: "stats-head" }, el("h2", {}, "统计"),
      el("label", {}, "从 ", sinceIn), el("label", {}, "到 ", untilIn), el("label", {}, "类型 ", kindSel),
      el("button", { onclick: load }, "查询"),
      el("button", { onclick: downloadCsv, id: "csv" }, "导出 CSV")),
    body));

  async function load() {
    try {
      render(await get("stats", { ...range(), period: "day" }));
    } catch (err) { body.replaceChildren(el("p", { class: "error" }, err.message)); }
  }

  async function downloadCsv() {
    try {
      const res = await request("GET", "stats.csv", { query: { ...range(), period: "day" }, raw: true });
      const a = el("a", { href: URL.createObjectURL(await res.blob()), download: `urbaneye-stats-${sinceIn.value}-${untilIn.value}.csv` });
      document.body.append(a);
      a.click();
      a.remove();
    } catch (err) { toast(err.message, "error"); }
  }

  function render(s) {
    const t = s.totals;
    const pct = (v) => (v === null || v === undefined ? "—" : `${(v * 100).toFixed(1)}%`);
    const tiles = [
      ["受理", `${t.received} 件`], ["办结", `${t.closed} 件`], ["办结率", pct(t.closure_rate)],
      ["AI 发现", `${t.detected} 件`], ["确认 / 驳回", `${t.confirmed} / ${t.rejected}`], ["准确率", pct(t.precision)],
      ["待审核", `${t.pending} 件`], ["待分类", `${t.unclassified} 件`],
      ["审核用时中位数", t.median_review_ms === null ? "—" : `${(t.median_review_ms / 1000).toFixed(1)} 秒`],
    ];
    const kinds = statsKinds(s);
    body.replaceChildren(
      el("div", { class: "report" }, ...s.report.map((line) => el("p", {}, line))),
      el("div", { class: "tiles" }, ...tiles.map(([k, v]) => el("div", { class: "tile" }, el("span", {}, k), el("b", {}, v)))),
      el("div", { class: "charts" },
        el("figure", { class: "chart" }, el("figcaption", {}, "每日案件数（按类型）"), casesPerDay(s, kinds), legend(kinds)),
        el("figure", { class: "chart" }, el("figcaption", {}, "每日办结率（办结 / 受理）"), closureRate(s)),
        el("figure", { class: "chart wide" }, el("figcaption", {}, "各摄像头识别准确率（确认 / 已审）"), precisionByCamera(s))),
    );
  }

  function days(s) {
    const out = [];
    const start = new Date(`${sinceIn.value}T00:00:00+08:00`);
    const end = new Date(`${untilIn.value}T00:00:00+08:00`);
    for (let d = start; d <= end; d = new Date(d.getTime() + 86400e3)) {
      out.push(new Date(d.getTime() + 8 * 3600e3).toISOString().slice(0, 10));
    }
    return out.length ? out : [...new Set(s.rows.map((r) => r.period))].sort();
  }

  function legend(kinds) {
    return el("div", { class: "legend-row", id: "stats-legend" }, ...kinds.map((k) =>
      el("span", { dataset: { kind: k.id } }, swatch(k.colour), k.name)));
  }

  // colour set through the CSSOM: a style attribute would need 'unsafe-inline' in the page's CSP
  function swatch(colour) {
    const node = el("i", { class: "swatch" });
    node.style.background = colour;
    return node;
  }

  function axes(g, W, H, pad, max, fmt) {
    for (let i = 0; i <= 4; i++) {
      const y = H - pad.b - ((H - pad.t - pad.b) * i) / 4;
      g.append(svg("line", { x1: pad.l, x2: W - pad.r, y1: y, y2: y, class: "grid" }));
      g.append(svg("text", { x: pad.l - 6, y: y + 4, class: "tick", "text-anchor": "end" }, fmt((max * i) / 4)));
    }
  }

  function xLabels(g, labels, x, H, pad) {
    const step = Math.ceil(labels.length / 10);
    labels.forEach((d, i) => {
      if (i % step) return;
      g.append(svg("text", { x: x(i), y: H - pad.b + 16, class: "tick", "text-anchor": "middle" }, d.slice(5)));
    });
  }

  function casesPerDay(s, kinds) {
    const labels = days(s);
    const byDay = new Map(labels.map((d) => [d, {}]));
    for (const r of s.rows) {
      const slot = byDay.get(r.period) || {};
      slot[r.kind] = (slot[r.kind] || 0) + r.detected;
      byDay.set(r.period, slot);
    }
    const totals = labels.map((d) => Object.values(byDay.get(d) || {}).reduce((a, b) => a + b, 0));
    const max = Math.max(4, ...totals);
    const W = 640, H = 240, pad = { l: 40, r: 10, t: 10, b: 26 };
    const g = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart-svg", role: "img", "aria-label": "每日案件数" });
    axes(g, W, H, pad, max, (v) => Math.round(v));
    const bw = (W - pad.l - pad.r) / labels.length;
    const x = (i) => pad.l + bw * (i + 0.5);
    labels.forEach((d, i) => {
      let y = H - pad.b;
      for (const kind of kinds) {
        const n = (byDay.get(d) || {})[kind.id] || 0;
        if (!n) continue;
        const h = ((H - pad.t - pad.b) * n) / max;
        y -= h;
        g.append(svg("rect", { x: pad.l + bw * i + bw * 0.15, y, width: bw * 0.7, height: h, fill: kind.colour, "data-kind": kind.id },
          svg("title", {}, `${d} ${kind.name} ${n} 件`)));
      }
    });
    xLabels(g, labels, x, H, pad);
    return g;
  }

  function closureRate(s) {
    const labels = days(s);
    const agg = new Map();
    for (const r of s.rows) {
      const a = agg.get(r.period) || { received: 0, closed: 0 };
      a.received += r.received;
      a.closed += r.closed;
      agg.set(r.period, a);
    }
    const W = 640, H = 240, pad = { l: 44, r: 10, t: 10, b: 26 };
    const g = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart-svg", role: "img", "aria-label": "每日办结率" });
    axes(g, W, H, pad, 1, (v) => `${Math.round(v * 100)}%`);
    const bw = (W - pad.l - pad.r) / labels.length;
    const x = (i) => pad.l + bw * (i + 0.5);
    const y = (v) => H - pad.b - (H - pad.t - pad.b) * v;
    const pts = [];
    labels.forEach((d, i) => {
      const a = agg.get(d);
      if (!a || !a.received) return;
      const rate = a.closed / a.received;
      pts.push(`${x(i)},${y(rate)}`);
      g.append(svg("circle", { cx: x(i), cy: y(rate), r: 3.5, class: "pt" },
        svg("title", {}, `${d} 受理 ${a.received} 件，办结 ${a.closed} 件，办结率 ${(rate * 100).toFixed(1)}%`)));
    });
    if (pts.length > 1) g.prepend(svg("polyline", { points: pts.join(" "), class: "line" }));
    if (!pts.length) g.append(svg("text", { x: W / 2, y: H / 2, class: "tick", "text-anchor": "middle" }, "此期间无受理案件"));
    xLabels(g, labels, x, H, pad);
    return g;
  }

  function precisionByCamera(s) {
    const agg = new Map();
    for (const p of s.precision_by_camera) {
      const a = agg.get(p.camera_id) || { confirmed: 0, rejected: 0 };
      a.confirmed += p.confirmed;
      a.rejected += p.rejected;
      agg.set(p.camera_id, a);
    }
    const rows = [...agg.entries()].sort((a, b) => a[0].localeCompare(b[0]));
    const W = 1240, rowH = 24, pad = { l: 110, r: 170, t: 6, b: 6 };
    const H = Math.max(rows.length, 1) * rowH + pad.t + pad.b;
    const g = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart-svg", role: "img", "aria-label": "各摄像头准确率" });
    if (!rows.length) g.append(svg("text", { x: W / 2, y: H / 2 + 4, class: "tick", "text-anchor": "middle" }, "此期间无已审案件"));
    rows.forEach(([cam, a], i) => {
      const p = a.confirmed / (a.confirmed + a.rejected);
      const y = pad.t + i * rowH;
      const w = (W - pad.l - pad.r) * p;
      g.append(svg("text", { x: pad.l - 8, y: y + 17, class: "tick", "text-anchor": "end" }, cam));
      g.append(svg("rect", { x: pad.l, y: y + 4, width: W - pad.l - pad.r, height: rowH - 8, class: "track" }));
      g.append(svg("rect", { x: pad.l, y: y + 4, width: w, height: rowH - 8, class: p >= 0.8 ? "bar good" : p >= 0.5 ? "bar mid" : "bar bad" },
        svg("title", {}, `${cam} 确认 ${a.confirmed} / 驳回 ${a.rejected}`)));
      g.append(svg("text", { x: pad.l + w + 6, y: y + 17, class: "tick" }, `${(p * 100).toFixed(1)}%（${a.confirmed}/${a.confirmed + a.rejected}）`));
    });
    return g;
  }

  load();
  return null;
}
