// The annotate view: the prompt, as text, Markdown, HTML or chat messages, parsed by POST
// /annotate into spans and tokens; the last request is what the model panel steers.
import { $, el, fillSelect } from "./dom.js";

const BADGES = { hard: "RULE", high: "HIGH", normal: "NORM", low: "LOW" };
const specialById = new Map();
export let lastRequest = null;

function mode() {
  return document.querySelector('input[name="mode"]:checked').value;
}

export function requestBody() {
  const body = {
    format: $("#format").value,
    strict: $("#strict").checked,
    detect_rules: $("#detect").checked,
    encoding: $("#encoding").value,
    tokens: true,
    offsets: true,
    trusted_roles: $("#roles").value.split(",").map((s) => s.trim()).filter(Boolean),
  };
  const raw = $("#prompt").value;
  if (mode() === "messages") {
    let messages;
    try {
      messages = JSON.parse(raw);
    } catch (err) {
      throw new Error(`the messages are not valid JSON: ${err.message}`);
    }
    body.messages = messages;
  } else {
    body.text = raw;
  }
  return body;
}

// Every annotation is numbered. Only the newest one's answer is shown (an older request that
// answers late is dropped), and once it is shown #status carries its number in data-seq, so
// that a script (or a test) can wait for the answer to *its* request rather than any answer.
let annotateSeq = 0;

export async function annotate(file = null) {
  const seq = ++annotateSeq;
  const status = $("#status");
  const finish = (text) => {
    if (seq !== annotateSeq) return false;
    status.textContent = text;
    status.dataset.seq = String(seq);
    return true;
  };
  status.textContent = "annotating…";
  let body;
  try {
    body = requestBody();
  } catch (err) {
    showError({ detail: err.message });
    finish("");
    return;
  }
  lastRequest = body;
  let response, data;
  try {
    if (file) {
      // a document (.docx, .rtf) or a text file: a multipart upload with the same options
      const form = new FormData();
      form.append("file", file, file.name);
      for (const key of ["strict", "detect_rules", "encoding", "tokens", "offsets", "trusted_roles"]) {
        form.append(key, JSON.stringify(body[key]));
      }
      response = await fetch("/annotate", { method: "POST", body: form });
    } else {
      response = await fetch("/annotate", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
    }
    data = await response.json();
  } catch (err) {
    if (seq !== annotateSeq) return;
    showError({ detail: `the server did not answer: ${err.message}` });
    clearResults();
    finish("error");
    return;
  }
  if (seq !== annotateSeq) return; // a newer annotation is under way: this answer is stale
  if (!response.ok) {
    showError(data, body);
    clearResults();
    finish(`error ${response.status}`);
    return;
  }
  $("#error").hidden = true;
  render(data);
  finish(`${data.token_count} tokens (${data.encoding})`);
}

function clearResults() {
  $("#messages").replaceChildren();
  $("#spans tbody").replaceChildren();
  $("#warnings").replaceChildren();
  $("#tokens").replaceChildren();
  $("#token-count").textContent = "";
}

function showError(problem, body) {
  const box = $("#error");
  box.replaceChildren();
  box.hidden = false;
  box.dataset.offset = problem.offset ?? "";
  box.dataset.line = problem.line ?? "";
  box.dataset.column = problem.column ?? "";
  const where = problem.line ? ` at line ${problem.line}, column ${problem.column}` : "";
  const inMessage = problem.message_index != null ? ` in message ${problem.message_index}` : "";
  box.append(el("strong", { text: `${problem.title || "Error"}${inMessage}${where}: ` }), problem.detail || "");
  if (problem.line && body) {
    // the faulty line with a caret under the column, from the text as sent
    const source = body.text ?? (body.messages?.[problem.message_index]?.content ?? "");
    const line = String(source).split("\n")[problem.line - 1] ?? "";
    const pre = el("pre", { class: "excerpt", "aria-label": "where the error is" });
    pre.append(line + "\n", el("span", { class: "caret", text: " ".repeat(problem.column - 1) + "^" }));
    box.append(pre);
    if (body.text != null && problem.offset != null) {
      const area = $("#prompt");
      area.focus();
      area.setSelectionRange(problem.offset, Math.min(problem.offset + 1, area.value.length));
    }
  }
}

function render(data) {
  clearResults();
  const documents = data.messages ?? [{ ...data.document, role: null, index: 0, trusted: true }];
  for (const doc of documents) {
    const box = el("article", { class: "message", "data-index": String(doc.index) });
    if (doc.role) {
      const role = el("div", { class: "role", text: doc.role });
      if (!doc.trusted) role.append(" ", el("span", { class: "untrusted", text: "(untrusted: markup kept as text)" }));
      box.append(role);
    }
    box.append(cleanText(doc));
    $("#messages").append(box);
    for (const span of doc.spans) {
      const text = doc.text.slice(span.start, span.end);
      $("#spans tbody").append(
        el("tr", { "data-level": span.level },
          el("td", { text: String(doc.index) }),
          el("td", {}, levelLabel(span.level)),
          el("td", { text: span.via ? `${span.source}: ${span.via}` : span.source }),
          el("td", { text: `${span.start}–${span.end}` }),
          el("td", { class: "text", text })));
    }
    for (const w of doc.warnings) {
      const item = el("li", { "data-offset": String(w.offset ?? "") },
        el("strong", { text: w.code }), ` (line ${w.line}, column ${w.column}${doc.role ? `, message ${doc.index}` : ""}): ${w.message}`);
      $("#warnings").append(item);
    }
    renderTokens(doc);
  }
  if (!$("#warnings").children.length) $("#warnings").append(el("li", { class: "hint", text: "none" }));
}

function levelLabel(level) {
  return el("span", { class: `span lvl-${level}` }, el("span", { class: "badge", "aria-hidden": "true", text: BADGES[level] }), level);
}

function cleanText(doc) {
  const pre = el("p", { class: "clean" });
  let pos = 0;
  for (const span of doc.spans) {
    if (span.start > pos) pre.append(doc.text.slice(pos, span.start));
    const mark = el("mark", {
      class: `span lvl-${span.level}`,
      "data-level": span.level,
      "data-source": span.source,
      "data-via": span.via ?? "",
      title: `${span.level} · from ${span.source}${span.via ? ` (${span.via})` : ""} · characters ${span.start}–${span.end}`,
      "aria-label": `${span.level} span from ${span.source}: ${doc.text.slice(span.start, span.end)}`,
      tabindex: "0",
    });
    mark.append(el("span", { class: "badge", "aria-hidden": "true", text: BADGES[span.level] }), doc.text.slice(span.start, span.end));
    pre.append(mark);
    pos = span.end;
  }
  pre.append(doc.text.slice(pos));
  return pre;
}

function renderTokens(doc) {
  const t = doc.tokens;
  if (!t) return;
  const box = $("#tokens");
  if (doc.role) box.append(el("span", { class: "tok marker", text: `[${doc.role}]` }));
  for (let i = 0; i < t.ids.length; i++) {
    const id = t.ids[i];
    const level = t.levels[i];
    if (t.markers[i]) {
      const special = specialById.get(id);
      box.append(el("span", {
        class: "tok marker", tabindex: "0", "data-id": String(id),
        title: `importance special token ${special ? special.token : ""} · id ${id}`,
        text: special ? special.token : `<${id}>`,
      }));
      continue;
    }
    const [start, end] = t.offsets ? t.offsets[i] : [0, 0];
    const text = doc.text.slice(start, end);
    box.append(el("span", {
      class: `tok${level !== "normal" ? ` lvl-${level}` : ""}`,
      tabindex: "0",
      "data-id": String(id),
      "data-level": level,
      title: `id ${id} · ${level} · characters ${start}–${end}`,
      "aria-label": `token ${JSON.stringify(text)} id ${id} level ${level}`,
      text: text.replace(/\n/g, "↵"),
    }));
  }
  $("#token-count").textContent = `(${box.querySelectorAll(".tok:not(.marker)").length + box.querySelectorAll(".tok.marker[data-id]").length} shown)`;
}

export async function loadEncodings() {
  const data = await fillSelect("#encoding", "/encodings", (d) => d.encodings, (e) => ({ value: e.name }));
  for (const enc of data?.encodings || []) {
    for (const s of enc.special_tokens) specialById.set(s.id, s);
  }
}

$("#annotate-form").addEventListener("submit", (e) => {
  e.preventDefault();
  annotate();
});
// Rich text pasted from an editor (Google Docs, Word, a web page) arrives as text/html: the
// prompt takes its HTML, so that the styles that mark importance are kept, and is annotated.
$("#prompt").addEventListener("paste", (e) => {
  const html = e.clipboardData?.getData("text/html");
  if (!html || mode() !== "text") return;
  e.preventDefault();
  const box = $("#prompt");
  box.setRangeText(html, box.selectionStart, box.selectionEnd, "end");
  $("#format").value = "html";
  annotate();
});
$("#file").addEventListener("change", () => {
  const file = $("#file").files[0];
  if (file) annotate(file);
});
$("#prompt").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
    e.preventDefault();
    annotate();
  }
});
for (const input of document.querySelectorAll('input[name="mode"]')) {
  input.addEventListener("change", () => {
    if (mode() === "messages" && !$("#prompt").value.trim().startsWith("[")) {
      $("#prompt").value = JSON.stringify([
        { role: "system", content: $("#prompt").value },
        { role: "user", content: "How do I reset my online banking PIN?" },
      ], null, 2);
    }
  });
}
