// The eval view: submit a job (POST /eval), follow its progress as server-sent events, and show
// its results and plots when it is done.
import { $, el } from "./dom.js";

const streams = new Map();

export async function loadJobs() {
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
