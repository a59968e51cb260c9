// App shell: login, hash routing between the review queue, cameras and statistics.
import { auth, get, login, onQueueChange, post } from "./api.js";
import { mountQueue } from "./queue.js";
import { mountCameras } from "./cameras.js";
import { mountStats } from "./stats.js";
import { mountAnnotate } from "./annotate.js";
import { mountCase } from "./case.js";

const view = document.getElementById("view");
let unmount = null;
let unsubscribeBadge = null;

function showBadge() {
  // the topbar's pending count follows the live queue on every page
  if (unsubscribeBadge) return;
  unsubscribeBadge = onQueueChange((state) => {
    document.getElementById("pending-count").textContent = state.pending ? String(state.pending) : "";
  });
}

function stopBadge() {
  if (unsubscribeBadge) { unsubscribeBadge(); unsubscribeBadge = null; }
  document.getElementById("pending-count").textContent = "";
}

function showLogin(message = "") {
  if (unmount) { unmount(); unmount = null; }
  stopBadge();
  view.replaceChildren();
  document.getElementById("topbar").hidden = true;
  document.getElementById("login-view").hidden = false;
  document.getElementById("login-error").textContent = message;
  document.getElementById("login-username").focus();
}

async function route() {
  if (!auth.token) return showLogin();
  if (!auth.user) {
    try { auth.user = await get("auth/me"); } catch { return showLogin(); }
  }
  document.getElementById("login-view").hidden = true;
  // the hidden password field must not keep the focus: review keys typed into it would be lost
  if (document.getElementById("login-view").contains(document.activeElement)) document.activeElement.blur();
  document.getElementById("topbar").hidden = false;
  document.getElementById("who").textContent = `${auth.user.display_name || auth.user.username}（${roleZh(auth.user.role)}）`;
  document.body.dataset.role = auth.user.role;
  showBadge();
  const [, page = "queue", ...rest] = location.hash.split("/");
  for (const a of document.querySelectorAll("[data-nav]")) a.classList.toggle("active", a.dataset.nav === page);
  if (unmount) { unmount(); unmount = null; }
  view.replaceChildren();
  const mounts = { queue: mountQueue, cameras: mountCameras, stats: mountStats, annotate: mountAnnotate, case: mountCase };
  unmount = (mounts[page] || mountQueue)(view, rest.map(decodeURIComponent)) || null;
}

function roleZh(role) {
  return { admin: "管理员", reviewer: "审核员", viewer: "查看", service: "服务" }[role] || role;
}

auth.onUnauthorized = () => { auth.user = null; showLogin("登录已过期，请重新登录"); };

document.getElementById("login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const button = document.getElementById("login-submit");
  button.disabled = true;
  try {
    await login(document.getElementById("login-username").value, document.getElementById("login-password").value);
    document.getElementById("login-password").value = "";
    // setting the hash routes (hashchange); routing here as well would mount the page twice
    if (!location.hash || location.hash === "#") location.hash = "#/queue";
    else await route();
  } catch (err) {
    document.getElementById("login-error").textContent = err.message;
  } finally {
    button.disabled = false;
  }
});

document.getElementById("logout").addEventListener("click", () => {
  // the server gives back the cases this user held and revokes the token (every token of this user); the page
  // forgets it either way
  post("auth/logout").catch(() => {});
  auth.token = null;
  auth.user = null;
  showLogin();
});

window.addEventListener("hashchange", route);
route();
