// One case's page (#/case/<id>, issue 19): what the camera saw before (evidence) and after (the camera
// re-check, 智能核查) side by side, the re-checks, and the case's timeline from the audit chain.
import {
  ESCALATION_ZH, STATUS_ZH, auth, el, fill, fmtDuration, fmtTime, get, kindName, post, toast,
} from "./api.js";

const RESULT_ZH = { cleared: "已清除", still_present: "仍存在", inconclusive: "无法判断" };
const TRIGGER_ZH = { callback: "派遣/处置回调", schedule: "定时核查", ended: "违规自行消失", manual: "人工发起" };
const STATE_ZH = { pending: "等待摄像机", running: "核查中", done: "已完成", skipped: "未核查" };
const ACTION_ZH = {
  closed: "核查通过，已结案（视频核查）", closed_undispatched: "派遣前违规已消失，已结案", escalated: "仍存在，已升级",
  ended_before_dispatch: "派遣前违规已消失",
};
const AUDIT_ZH = {
  create: "立案", transition: "状态变更", push: "推送热线", recheck: "视频核查", recheck_request: "请求视频核查",
  opened: "发现", updated: "取证", closed: "违规结束", review: "审核", classify: "分类",
};
const REFRESH_MS = 4000;

export function mountCase(root, [caseId] = []) {
  let timer = null;
  let alive = true;
  if (!caseId) {
    fill(root, el("section", { class: "empty" }, el("p", {}, "请从案件列表打开一个案件")));
    return null;
  }
  const page = el("section", { class: "page case case-page", id: "case-page" }, el("p", { class: "muted" }, "加载中…"));
  root.append(page);
  load();

  async function load() {
    clearTimeout(timer);
    try {
      const [c, timeline, rechecks] = await Promise.all([
        get(`cases/${encodeURIComponent(caseId)}`),
        get(`cases/${encodeURIComponent(caseId)}/timeline`),
        get(`cases/${encodeURIComponent(caseId)}/rechecks`),
      ]);
      if (!alive) return;
      render(c, timeline.data, rechecks.data);
      // a re-check under way: follow it until the camera has answered
      if (rechecks.data.some((r) => r.state === "pending" || r.state === "running")) timer = setTimeout(load, REFRESH_MS);
    } catch (err) {
      if (alive) fill(page, el("p", { class: "error", id: "case-error" }, err.message));
    }
  }

  async function requestRecheck(button) {
    button.disabled = true;
    try {
      await post(`cases/${encodeURIComponent(caseId)}/rechecks`);
      toast("已请求视频核查，摄像机将重新查看现场");
      await load();
    } catch (err) {
      toast(err.message, "error");
      button.disabled = false;
    }
  }

  function render(c, entries, rechecks) {
    const tz = c.camera_timezone;
    const done = rechecks.find((r) => r.state === "done");
    const active = rechecks.find((r) => r.state === "pending" || r.state === "running");
    const mayRequest = ["admin", "reviewer"].includes(auth.user?.role) && !["closed", "rejected"].includes(c.status);
    fill(page,
      el("div", { class: "case-head" },
        el("h2", {}, kindName(c.kind, c.kind_name_zh), el("span", { class: "gbt" }, ` ${c.gbt_code} ${c.gbt_name}`)),
        el("span", { class: `badge ${c.escalation}`, id: "case-escalation" }, ESCALATION_ZH[c.escalation] || c.escalation),
        el("span", { id: "case-status" }, STATUS_ZH[c.status] || c.status),
        mayRequest && el("button", { id: "request-recheck", class: "pos", disabled: Boolean(active),
          onclick: (e) => requestRecheck(e.currentTarget) }, active ? "核查中…" : "请求视频核查")),
      el("dl", { class: "meta" },
        el("dt", {}, "地点"), el("dd", {}, c.address || "—"),
        el("dt", {}, "摄像机"), el("dd", {}, c.camera_name || c.camera_id),
        el("dt", {}, "开始"), el("dd", {}, fmtTime(c.started_at, tz)),
        el("dt", {}, "持续"), el("dd", {}, fmtDuration(c.duration_s))),
      el("div", { class: "frames", id: "before-after" }, before(c), after(done, active, tz)),
      rechecks.length ? recheckList(rechecks, tz) : null,
      el("h3", {}, "案件时间线"),
      el("ol", { class: "timeline", id: "case-timeline" }, entries.map((e) => timelineEntry(e, tz))));
  }

  function before(c) {
    const annotated = c.evidence.filter((e) => e.variant === "annotated" && e.url);
    const ev = annotated[annotated.length - 1];
    return el("figure", { class: "frame", id: "before-photo" },
      el("div", { class: "imgwrap" }, ev ? el("img", { src: ev.url, alt: "处置前取证" }) : el("div", { class: "noimg" }, "无取证图片")),
      el("figcaption", {}, el("b", {}, "处置前（取证）"), ev ? ` ${fmtTime(ev.frame_ts, c.camera_timezone)}` : "",
        ev ? el("span", { class: "hash", title: ev.sha256 }, `SHA-256 ${ev.sha256.slice(0, 12)}…`) : null));
  }

  function after(r, active, tz) {
    const photo = r?.photos.find((p) => p.variant === "annotated");
    const text = r ? `${RESULT_ZH[r.result] || r.result}${r.reason ? `（${r.reason}）` : ""}` : active ? "核查中…" : "尚未核查";
    return el("figure", { class: "frame", id: "after-photo", dataset: { result: r?.result || "" } },
      el("div", { class: "imgwrap" }, photo ? el("img", { src: photo.url, alt: "核查后现场" }) : el("div", { class: "noimg" }, text)),
      el("figcaption", {}, el("b", {}, "核查后（视频核查）"), ` ${text}`, r?.frame_at ? ` ${fmtTime(r.frame_at, tz)}` : "",
        photo ? el("span", { class: "hash", title: photo.sha256 }, `SHA-256 ${photo.sha256.slice(0, 12)}…`) : null));
  }

  function recheckList(rechecks, tz) {
    return el("table", { class: "rechecks", id: "case-rechecks" },
      el("thead", {}, el("tr", {}, ["请求时间", "来源", "状态", "结果", "处理", "画面"].map((h) => el("th", {}, h)))),
      el("tbody", {}, rechecks.map((r) => el("tr", { dataset: { state: r.state, result: r.result } },
        el("td", {}, fmtTime(r.requested_at, tz)),
        el("td", {}, TRIGGER_ZH[r.trigger] || r.trigger),
        el("td", {}, STATE_ZH[r.state] || r.state),
        el("td", {}, r.result ? `${RESULT_ZH[r.result] || r.result}${r.reason ? `：${r.reason}` : ""}` : "—"),
        el("td", {}, ACTION_ZH[r.action] || r.action || "—"),
        el("td", {}, r.frames ? `${r.present_frames}/${r.usable_frames} 帧有目标` : "—")))));
  }

  function timelineEntry(e, tz) {
    const d = e.detail || {};
    const moved = e.from_status !== e.to_status && e.to_status
      ? `${STATUS_ZH[e.from_status] || e.from_status || "—"} → ${STATUS_ZH[e.to_status] || e.to_status}` : "";
    const what = e.action === "recheck"
      ? `${RESULT_ZH[d.result] || d.result}${d.reason ? `（${d.reason}）` : ""}${d.action ? `，${ACTION_ZH[d.action] || d.action}` : ""}`
      : d.reason || d.callback || d.note || "";
    return el("li", { dataset: { action: e.action } },
      el("span", { class: "muted" }, fmtTime(e.at, tz)), " ",
      el("b", {}, AUDIT_ZH[e.action] || e.action), moved ? ` ${moved}` : "", what ? ` ${what}` : "",
      el("span", { class: "muted small" }, ` ${e.actor}`),
      d.after_annotated_sha256 ? el("span", { class: "hash", title: d.after_annotated_sha256 },
        `核查图 SHA-256 ${d.after_annotated_sha256.slice(0, 12)}…`) : null);
  }

  return () => { alive = false; clearTimeout(timer); };
}
