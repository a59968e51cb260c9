// Thin fetch wrapper: bearer token from sessionStorage, JSON in/out, errors as Error(detail).
const TOKEN_KEY = "urbaneye.token";
const API = "/api/v1";

export const KIND_ZH = {
  street_vending: "占道经营",
  exposed_garbage: "暴露垃圾",
  bike_misparking: "非机动车乱停放",
  open_air_barbecue: "露天烧烤",
};
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

export class ApiError extends Error {
  constructor(status, detail) {
    super(typeof detail === "string" ? detail : formatValidation(detail));
    this.status = status;
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
    throw new ApiError(res.status, detail);
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

export function fmtTime(iso) {
  if (!iso) return "—";
  return new Date(iso).toLocaleString("zh-CN", { timeZone: "Asia/Shanghai", hour12: false });
}

export function fmtDuration(seconds) {
  const s = Math.round(seconds || 0);
  if (s < 60) return `${s} 秒`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} 分 ${s % 60} 秒`;
  return `${Math.floor(m / 60)} 小时 ${m % 60} 分`;
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
