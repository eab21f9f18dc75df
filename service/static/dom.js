// What every part of the page uses: a selector, an element builder, and a <select> filled
// from one of the server's listings.

export const $ = (sel) => document.querySelector(sel);
export const el = (tag, attrs = {}, ...children) => {
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

// Fill a <select> from a listing the server gives: one option per entry that `option` turns into
// {value, title}; the entry named by the listing's `default` is selected.
export async function fillSelect(selector, url, entries, option) {
  const response = await fetch(url);
  if (!response.ok) return null;
  const data = await response.json();
  $(selector).replaceChildren(...entries(data).map((entry) => {
    const { value, title } = option(entry);
    const attrs = { value, text: value, selected: value === data.default };
    if (title) attrs.title = title;
    return el("option", attrs);
  }));
  return data;
}
