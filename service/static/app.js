// salience's page: annotate a prompt and see its spans, tokens and bias; watch eval jobs.
// Plain browser JavaScript modules, no build step, no network beyond this server: dom.js (shared
// helpers), annotate.js, model.js (the model panel) and jobs.js (eval jobs); this one wires the
// tabs and starts the page.
import { $ } from "./dom.js";
import { annotate, loadEncodings } from "./annotate.js";
import { loadJobs } from "./jobs.js";
import { loadMethods } from "./model.js";

// Tabs (keyboard: the arrows move between them).
function showView(name) {
  for (const tab of document.querySelectorAll(".tab")) {
    const on = tab.id === `tab-${name}`;
    tab.setAttribute("aria-selected", String(on));
    $(`#${tab.getAttribute("aria-controls")}`).hidden = !on;
  }
  if (name === "eval") loadJobs();
}
for (const tab of document.querySelectorAll(".tab")) {
  tab.addEventListener("click", () => showView(tab.id.slice(4)));
  tab.addEventListener("keydown", (e) => {
    if (e.key === "ArrowRight" || e.key === "ArrowLeft") {
      const tabs = [...document.querySelectorAll(".tab")];
      const next = tabs[(tabs.indexOf(tab) + (e.key === "ArrowRight" ? 1 : tabs.length - 1)) % tabs.length];
      next.focus();
      next.click();
    }
  });
}

loadMethods();
loadEncodings().then(() => annotate());
