// The model panel: the bias a method puts on each token (POST /model/bias) and the local
// model's answers without and with it, side by side (POST /v1/chat/completions).
import { $, el, fillSelect } from "./dom.js";
import { lastRequest, requestBody } from "./annotate.js";

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

// The model panel's methods come from the registry (GET /model/methods): every method but none,
// which the panel always shows beside the chosen one.
export function loadMethods() {
  return fillSelect("#method", "/model/methods", (d) => d.methods.filter((m) => m.kind !== "none"),
    (m) => ({ value: m.name, title: m.help }));
}
