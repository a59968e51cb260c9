// Annotation queue of real frames (issue 14): reserved page, filled in by its work.
import { el, fill } from "./api.js";

export function mountAnnotate(root) {
  fill(root, el("section", { class: "empty" }, el("p", {}, "标注队列暂无内容")));
  return null;
}
