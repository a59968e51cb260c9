// One case's page (issue 19): reserved, filled in by its work.
import { el, fill } from "./api.js";

export function mountCase(root, [caseId] = []) {
  fill(root, el("section", { class: "empty" }, el("p", {}, `案件 ${caseId || ""}`)));
  return null;
}
