// salience's page: annotate a prompt and see its spans, tokens and bias; watch eval jobs.
// Plain browser JavaScript, no build step, no network beyond this server.
"use strict";

const $ = (sel) => document.querySelector(sel);
const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("data-") || k.startsWith("aria-") || k === "title" || k === "tabindex" || k === "role") node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const child of children) node.append(child);
  return node;
};
const BADGES = { hard: "RULE", high: "HIGH", normal: "NORM", low: "LOW" };

let specialById = new Map();
let lastRequest = null;

// ---------- tabs (keyboard: arrows move between tabs) ----------
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

// ---------- annotate ----------
function mode() {
  return document.querySelector('input[name="mode"]:checked').value;
}

function requestBody() {
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

async function annotate(file = null) {
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

async function loadEncodings() {
  const response = await fetch("/encodings");
  if (!response.ok) return;
  const data = await response.json();
  const select = $("#encoding");
  select.replaceChildren();
  for (const enc of data.encodings) {
    select.append(el("option", { value: enc.name, text: enc.name, selected: enc.name === data.default }));
    for (const s of enc.special_tokens) specialById.set(s.id, s);
  }
}

// The model panel's methods come from the registry (GET /model/methods): every method but none,
// which the panel always shows beside the chosen one.
async function loadMethods() {
  const response = await fetch("/model/methods");
  if (!response.ok) return;
  const data = await response.json();
  const select = $("#method");
  select.replaceChildren();
  for (const m of data.methods) {
    if (m.kind === "none") continue;
    select.append(el("option", { value: m.name, text: m.name, title: m.help, selected: m.name === data.default }));
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

// ---------- the local model: bias per token, answers side by side ----------
function chatMessages() {
  const body = lastRequest ?? requestBody();
  if (body.messages) return body.messages;
  return [
    { role: "system", content: body.text },
    { role: "user", content: "Please answer the request above." },
  ];
}

async function showBias() {
  const method = $("#method").value;
  $("#model-status").textContent = `loading the model and computing the ${method} bias…`;
  const response = await fetch("/model/bias", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ messages: chatMessages(), method, trusted_roles: $("#roles").value.split(",").map((s) => s.trim()).filter(Boolean) }),
  });
  const data = await response.json();
  const box = $("#bias");
  box.replaceChildren();
  if (!response.ok) {
    $("#model-status").textContent = `${data.title}: ${data.detail}`;
    return;
  }
  const top = Math.max(1e-6, ...data.tokens.map((t) => Math.abs(t.bias_mean)));
  for (const t of data.tokens) {
    const item = el("span", {
      class: `bias-tok${t.steered ? "" : " unsteered"}${t.level ? ` lvl-${t.level}` : ""}`,
      tabindex: "0",
      title: `id ${t.id} · ${t.level ?? "no level"} · β mean ${t.bias_mean} (min ${t.bias_min}, max ${t.bias_max})${t.steered ? " · queries steered" : ""}`,
      "data-bias": String(t.bias_mean),
    });
    const bar = el("span", { class: "bar" });
    bar.style.opacity = String(Math.abs(t.bias_mean) / top);
    item.append(el("span", { text: t.text.replace(/\n/g, "↵") || "·" }), bar, el("span", { class: "val", text: t.bias_mean ? t.bias_mean.toFixed(2) : "" }));
    box.append(item);
  }
  const biased = data.tokens.filter((t) => t.bias_mean !== 0).length;
  $("#model-status").textContent = data.kind === "bias"
    ? `${method}: β on ${biased} of ${data.tokens.length} tokens (mean over ${data.layers} layers × ${data.heads} heads; bar = |β|)`
    : `${method} is a ${data.kind} method: no attention bias; the tokens are the prompt it rewrites`;
}

async function answer(model, maxTokens) {
  const response = await fetch("/v1/chat/completions", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model, messages: chatMessages(), max_tokens: maxTokens }),
  });
  const data = await response.json();
  if (!response.ok) return `error: ${data.error?.message ?? response.status}`;
  return data.choices[0].message.content;
}

async function compare() {
  const method = $("#method").value;
  const maxTokens = Number($("#max-tokens").value) || 48;
  $("#answer-method-name").textContent = method;
  $("#answer-none").textContent = "…";
  $("#answer-method").textContent = "…";
  $("#model-status").textContent = "generating with none, then with " + method + "…";
  $("#answer-none").textContent = await answer("salience-local/none", maxTokens);
  $("#answer-method").textContent = await answer(`salience-local/${method}`, maxTokens);
  $("#model-status").textContent = "done";
}
$("#show-bias").addEventListener("click", showBias);
$("#compare").addEventListener("click", compare);

// ---------- eval jobs ----------
const streams = new Map();

async function loadJobs() {
  const response = await fetch("/eval");
  const tbody = $("#jobs tbody");
  if (!response.ok) {
    const problem = await response.json();
    $("#eval-status").textContent = problem.detail ?? "no eval worker on this server";
    return;
  }
  const jobs = await response.json();
  tbody.replaceChildren();
  for (const job of jobs) tbody.append(jobRow(job));
  if (!jobs.length) tbody.append(el("tr", {}, el("td", { colSpan: 5, class: "hint", text: "no jobs yet" })));
}

function jobRow(job) {
  const row = el("tr", { "data-job": job.id });
  const bar = el("progress", { max: job.total || 1, value: job.done || 0, "aria-label": `job ${job.id} progress` });
  const grid = job.grid || {};
  row.append(
    el("td", { class: "text", text: job.id }),
    el("td", { class: "job-status", text: job.status }),
    el("td", {}, bar, el("span", { class: "count", text: ` ${job.done}/${job.total}` })),
    el("td", { text: `${grid.items} items · lengths ${grid.lengths} · ${grid.methods}` }),
    el("td", {}, el("button", { type: "button", text: "Open", onclick: () => openJob(job.id) })),
  );
  return row;
}

function updateRow(id, status, done, total) {
  const row = document.querySelector(`tr[data-job="${id}"]`);
  if (!row) return;
  if (status) row.querySelector(".job-status").textContent = status;
  if (done != null) {
    const bar = row.querySelector("progress");
    bar.value = done;
    if (total) bar.max = total;
    row.querySelector(".count").textContent = ` ${done}/${total ?? bar.max}`;
  }
}

async function openJob(id) {
  const section = $("#job");
  section.hidden = false;
  section.dataset.job = id;
  $("#job-title").textContent = `Job ${id}`;
  $("#job-results").replaceChildren();
  const job = await (await fetch(`/eval/${id}`)).json();
  setJobProgress(job.status, job.done, job.total);
  if (["done", "failed", "cancelled"].includes(job.status)) {
    showResults(job);
    return;
  }
  if (streams.has(id)) streams.get(id).close();
  const source = new EventSource(`/eval/${id}/events`);
  streams.set(id, source);
  let total = job.total;
  source.addEventListener("status", async (e) => {
    const data = JSON.parse(e.data);
    if (data.total) total = data.total;
    setJobProgress(data.status, data.done, total);
    updateRow(id, data.status, data.done, total);
    if (["done", "failed", "cancelled"].includes(data.status)) {
      source.close();
      streams.delete(id);
      showResults(await (await fetch(`/eval/${id}`)).json());
    }
  });
  source.addEventListener("progress", (e) => {
    const data = JSON.parse(e.data);
    if (data.total) total = data.total;
    setJobProgress("running", data.done, total);
    updateRow(id, "running", data.done, total);
  });
  source.onerror = () => {
    source.close();
    streams.delete(id);
  };
}

function setJobProgress(status, done, total) {
  const section = $("#job");
  section.dataset.status = status ?? "";
  const bar = $("#job-progress");
  if (total) bar.max = total;
  if (done != null) bar.value = done;
  $("#job-progress-text").textContent = `${status ?? ""}: ${done ?? bar.value} of ${total ?? bar.max} samples`;
}

function showResults(job) {
  const box = $("#job-results");
  box.replaceChildren();
  if (job.error) box.append(el("p", { text: `error: ${job.error}` }));
  if (!job.results?.length) return;
  const metrics = ["strict", "loose", "quality", "both"];
  // the measures beyond greedy pass/fail, where the job's grid asked for them
  const extra = [["sampled", "sampled both"], ["margin", "margin (nats)"]].filter(([k]) => job.results.some((row) => row[k]));
  const table = el("table", { class: "results" });
  table.append(el("thead", {}, el("tr", {}, ...["method", "length", "n", ...metrics, ...extra.map(([, h]) => h)].map((h) => el("th", { text: h })))));
  const tbody = el("tbody");
  const interval = (v, lo, hi) => `${v.toFixed(2)} [${lo.toFixed(2)}, ${hi.toFixed(2)}]`;
  for (const row of job.results) {
    tbody.append(el("tr", {},
      el("td", { text: row.method }), el("td", { text: String(row.length) }), el("td", { text: String(row.n) }),
      ...metrics.map((m) => el("td", { class: "rate", text: interval(row[m].rate, row[m].low, row[m].high) })),
      ...extra.map(([k]) => el("td", { class: `rate ${k}`, text: row[k] ? interval(row[k].mean, row[k].low, row[k].high) : "–" }))));
  }
  table.append(tbody);
  const hint = extra.length ? "greedy rate [95% Wilson interval]; sampled fraction and margin: mean [95% item-clustered bootstrap]" : "rate [95% Wilson interval]";
  box.append(el("p", { class: "hint", text: hint }), table);
  if (extra.length) {
    box.append(el("img", { src: `/eval/${job.id}/report?format=png&metric=measures`, alt: `greedy pass rate, sampled pass fraction and compliance margin against distractor length, per method, for job ${job.id}` }));
  } else {
    box.append(el("img", { src: `/eval/${job.id}/report?format=png&metric=both`, alt: `score (strict and quality) against distractor length, per method, for job ${job.id}` }));
  }
}

$("#eval-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const ints = (s) => s.split(",").map((x) => Number(x.trim())).filter((x) => !Number.isNaN(x));
  const body = {
    items: Number($("#eval-items").value),
    lengths: ints($("#eval-lengths").value),
    methods: $("#eval-methods").value.split(",").map((s) => s.trim()).filter(Boolean),
    max_new_tokens: Number($("#eval-max").value),
    samples: Number($("#eval-samples").value),
    margin: $("#eval-margin").checked,
  };
  const response = await fetch("/eval", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  const data = await response.json();
  if (!response.ok) {
    $("#eval-status").textContent = `${data.title}: ${data.detail}`;
    return;
  }
  $("#eval-status").textContent = `job ${data.id} queued`;
  await loadJobs();
  openJob(data.id);
});

loadMethods();
loadEncodings().then(annotate);
