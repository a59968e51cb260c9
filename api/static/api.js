// Thin fetch wrapper: bearer token from sessionStorage, JSON in/out, errors as Error(detail).
const TOKEN_KEY = "urbaneye.token";
const API = "/api/v1";

export const KIND_ZH = {
  street_vending: "占道经营",
  exposed_garbage: "暴露垃圾",
  bike_misparking: "非机动车乱停放",
  open_air_barbecue: "露天烧烤",
};
/** A kind's Chinese name: the one the case (or statistics row) carries — configured kinds bring their own —
 * else the built-in name, else its id. */
export function kindName(kind, nameZh = "") {
  return nameZh || KIND_ZH[kind] || kind;
}

/** Keys that pick a kind on a 待分类 case, in the order GET /kinds lists them (built-ins first). Letters only:
 * digits are the reject reasons, and Y J K U A Z keep their meaning. */
export const KIND_KEYS = "QWERTDFGHXCVBNM";

let kindsRequest = null;
/** Every violation kind the server knows (GET /api/v1/kinds), asked once per page (``fresh`` asks again).
 * Configured kinds' names join KIND_ZH, so every view names them. */
export function loadKinds(fresh = false) {
  if (!kindsRequest || fresh) {
    kindsRequest = get("kinds").then((res) => {
      for (const k of res.data) if (!KIND_ZH[k.id]) KIND_ZH[k.id] = k.name_zh;
      return res.data;
    });
    kindsRequest.catch(() => { kindsRequest = null; });
  }
  return kindsRequest;
}

export const STATUS_ZH = {
  pending_review: "待审核", confirmed: "已确认", rejected: "已驳回", queued: "待推送",
  accepted: "已受理", dispatched: "已派遣", handled: "已处置", verified: "已核查",
  closed: "已结案", dead_letter: "推送失败",
};
export const ESCALATION_ZH = { blue: "蓝色", yellow: "黄色", red: "红色" };
export const REASONS = [
  { key: "1", code: "false_detection", zh: "误检" },
  { key: "2", code: "permitted_vending", zh: "合规经营" },
  { key: "3", code: "duplicate", zh: "重复" },
  { key: "4", code: "insufficient_evidence", zh: "证据不足" },
  { key: "5", code: "other", zh: "其他" },
  { key: "6", code: "fixed_object", zh: "固定设施/常驻物体" },  // also remembered by the camera (false-alarm memory)
];
export const OBJECT_ZH = {
  person: "行人", bicycle: "自行车", e_bike: "电动车", vending_stall: "摊位",
  garbage: "垃圾", trash_bin: "垃圾桶", grill: "烤炉", smoke: "烟雾",
};
export const ZONE_KIND_ZH = {
  no_vending: "禁止摆摊", no_parking: "禁止停车", monitored: "监控区", allowed_vending: "便民摊区",
  bike_bay: "停车位", bin_area: "垃圾桶区",
};
export const ROAD_CLASS_ZH = { main: "主干道（严禁）", secondary: "次干道（严控）", lane: "小街巷（规范）" };

// What a reviewer reads when the server's text is not Chinese (a route without a translated message).
const STATUS_MESSAGE_ZH = {
  400: "请求格式有误", 401: "登录已过期，请重新登录", 403: "当前账号无权执行此操作", 404: "未找到该对象（可能已被删除）",
  409: "状态已变化，请刷新后重试", 413: "提交的内容过大", 422: "输入有误", 429: "操作过于频繁，请稍后再试",
};
const HAS_CJK = /[\u3400-\u9fff]/;

/** The Chinese message for an API error: the server's own text when it is Chinese, else one by status
 * (for 400/422 with the server's reason after it, so a form still says what to fix). */
export function errorMessage(status, detail) {
  const text = typeof detail === "string" ? detail : formatValidation(detail);
  if (HAS_CJK.test(text)) return text;
  const zh = STATUS_MESSAGE_ZH[status] || (status >= 500 ? "服务器暂时不可用，请稍后再试" : `请求失败（${status}）`);
  return (status === 400 || status === 422) && text ? `${zh}：${text}` : zh;
}

export class ApiError extends Error {
  constructor(status, detail, code = "") {
    super(errorMessage(status, detail));
    this.status = status;
    this.detail = detail;
    this.code = code; // X-Error-Code: case_claimed, case_decided, ...
  }
}

function formatValidation(detail) {
  if (!Array.isArray(detail)) return JSON.stringify(detail);
  return detail.map((d) => (d.msg || "").replace(/^Value error, /, "")).join("；");
}

export const auth = {
  get token() { return sessionStorage.getItem(TOKEN_KEY); },
  set token(value) {
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    else sessionStorage.removeItem(TOKEN_KEY);
  },
  user: null,
  onUnauthorized: () => {},
};

export async function request(method, path, { body, query, raw } = {}) {
  const url = new URL(path.startsWith("/") ? path : `${API}/${path}`, location.origin);
  for (const [k, v] of Object.entries(query || {})) {
    if (v === undefined || v === null || v === "") continue;
    for (const item of Array.isArray(v) ? v : [v]) url.searchParams.append(k, item);
  }
  const headers = {};
  if (auth.token) headers.Authorization = `Bearer ${auth.token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (res.status === 401 && !path.endsWith("/auth/login")) {
    auth.token = null;
    auth.onUnauthorized();
  }
  if (!res.ok) {
    let detail = res.statusText;
    try { detail = (await res.json()).detail; } catch { /* not JSON */ }
    throw new ApiError(res.status, detail, res.headers.get("X-Error-Code") || "");
  }
  if (raw) return res;
  if (res.status === 204) return null;
  return res.json();
}

export const get = (path, query) => request("GET", path, { query });
export const post = (path, body) => request("POST", path, { body });
export const put = (path, body) => request("PUT", path, { body });
export const del = (path) => request("DELETE", path);

export async function login(username, password) {
  const form = new URLSearchParams({ username, password });
  const res = await fetch(`${API}/auth/login`, {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: form,
  });
  if (!res.ok) {
    let detail = "登录失败";
    try { detail = (await res.json()).detail; } catch { /* keep default */ }
    if (res.status === 401) detail = "用户名或密码错误";
    if (res.status === 429) detail = `失败次数过多，请 ${res.headers.get("Retry-After")} 秒后再试`;
    throw new ApiError(res.status, detail);
  }
  auth.token = (await res.json()).access_token;
  auth.user = await get("auth/me");
  return auth.user;
}

/** Fetch an authenticated image (snapshot) as an object URL for <img>. */
export async function imageUrl(path, query) {
  const res = await request("GET", path, { query, raw: true });
  return URL.createObjectURL(await res.blob());
}

export const DEFAULT_TZ = "Asia/Shanghai";
const timeFormats = new Map();

/** Date and time parts of an instant in an IANA time zone (the API sends ISO 8601 with its offset). */
function partsIn(iso, timeZone) {
  if (!timeFormats.has(timeZone)) {
    timeFormats.set(timeZone, new Intl.DateTimeFormat("en-GB", {
      timeZone, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
    }));
  }
  const parts = {};
  for (const p of timeFormats.get(timeZone).formatToParts(new Date(iso))) parts[p.type] = p.value;
  return parts;
}

/** "2026-12-03 21:00:11" in the camera's time zone: the same text the evidence caption burns in. */
export function fmtTime(iso, timeZone = DEFAULT_TZ) {
  if (!iso) return "—";
  const p = partsIn(iso, timeZone || DEFAULT_TZ);
  return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}:${p.second}`;
}

/** "12-03 21:00": a queue entry's short time. */
export function fmtShortTime(iso, timeZone = DEFAULT_TZ) {
  if (!iso) return "—";
  const p = partsIn(iso, timeZone || DEFAULT_TZ);
  return `${p.month}-${p.day} ${p.hour}:${p.minute}`;
}

/** A duration as the evidence caption writes it (vision.evidence.format_duration_zh): 6分12秒, 45秒, 1小时5分. */
export function fmtDuration(seconds) {
  const total = Math.max(0, Math.round(seconds || 0));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  if (h) return `${h}小时${m}分`;
  if (m) return `${m}分${s}秒`;
  return `${s}秒`;
}

/** How long a case's violation has lasted: the recorded dwell, or for an open case (no end yet) the time since
 * it started, whichever is longer. The one place the UI computes a duration. */
export function dwellSeconds(c, nowMs = Date.now()) {
  if (c.ended_at) return c.duration_s;
  return Math.max(c.duration_s, (nowMs - Date.parse(c.started_at)) / 1000);
}

// ---- live queue: one EventSource per tab, shared by every view that listens --------------------------
const liveListeners = new Set();
let liveSource = null;
let liveRetry = null;

async function openLive() {
  clearTimeout(liveRetry);
  if (liveSource || !auth.token || !liveListeners.size) return;
  let ticket;
  try { ticket = await post("live/ticket"); } catch { liveRetry = setTimeout(openLive, 5000); return; }
  if (liveSource || !liveListeners.size) return;
  const url = new URL(`${API}/live/events`, location.origin);
  url.searchParams.set("token", ticket.token); // a one-minute ticket, only good for this stream
  const source = new EventSource(url);
  const openedAt = Date.now();
  liveSource = source;
  source.addEventListener("queue", (e) => {
    const state = JSON.parse(e.data);
    document.documentElement.dataset.live = "on"; // for tests and styling: the live feed has spoken
    for (const fn of liveListeners) fn(state);
  });
  source.onerror = () => {
    // never let the browser reconnect with a ticket that may have lapsed: close and ask for a new one
    source.close();
    if (liveSource === source) liveSource = null;
    // a stream the server ended after a while (it does every few minutes): reconnect at once; a failing one: wait
    liveRetry = setTimeout(openLive, Date.now() - openedAt > 10_000 ? 100 : 3000);
  };
}

/** Call ``fn(state)`` whenever the review queue changes (a case pending, decided, claimed); returns unsubscribe. */
export function onQueueChange(fn) {
  liveListeners.add(fn);
  openLive();
  return () => {
    liveListeners.delete(fn);
    if (!liveListeners.size) closeLive();
  };
}

export function closeLive() {
  clearTimeout(liveRetry);
  liveSource?.close();
  liveSource = null;
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(node.dataset, v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

/** Replace a node's children, skipping null/false entries (conditional parts). */
export function fill(node, ...children) {
  node.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}

export const SVG_NS = "http://www.w3.org/2000/svg";
export function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

let toastTimer = null;
export function toast(message, kind = "info") {
  const box = document.getElementById("toast");
  box.textContent = message;
  box.className = `toast show ${kind}`;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { box.className = "toast"; }, kind === "error" ? 6000 : 2500);
}
