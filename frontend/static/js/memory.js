// The chat page's Memory panel: what the avatar remembers about the signed-in fan (GET /api/avatars/{id}/memories),
// each with the message it came from; pin, edit, delete one, or forget everything. Refreshed after every reply.
import { api, pollUntil } from "./api.js";
import { el, showStatus } from "./dom.js";

const page = document.getElementById("chat");
const panel = document.getElementById("memory-panel");
const list = document.getElementById("memories");
const status = document.getElementById("memory-status");
const base = page ? `/api/avatars/${page.dataset.avatarId}/memories` : null;

async function act(work, done) {
  try {
    await work();
    if (done) showStatus(status, "done", done);
  } catch (error) {
    showStatus(status, "failed", error.detail ?? String(error), error.code ?? "");
  }
  await refresh();
}

function editor(memory, item) {
  const input = el("input", { type: "text", value: memory.text, maxLength: 200, required: true,
                              "aria-label": "Memory text" });
  const save = () => act(() => api(`${base}/${memory.id}`, { method: "PATCH", body: { text: input.value } }), "Saved.");
  item.replaceChildren(el("form", { className: "memory-edit", onsubmit: (event) => { event.preventDefault(); save(); } },
    input, el("button", { type: "submit" }, "Save"),
    el("button", { type: "button", className: "secondary", onclick: refresh }, "Cancel")));
  input.focus();
}

function memoryItem(memory) {
  const item = el("li", { className: "memory", "data-memory-id": memory.id, "data-key": memory.key });
  const pin = memory.pinned ? "Unpin" : "Pin";
  item.append(...[
    el("span", { className: "memory-text" }, memory.text),
    memory.pinned ? el("span", { className: "badge" }, "pinned") : null,
    el("small", { className: "memory-source muted" },
      memory.source_text ? ` from your message “${memory.source_text}”` : " (its message is gone)"),
    el("span", { className: "memory-actions" },
      el("button", { type: "button", className: "secondary", onclick: () =>
        act(() => api(`${base}/${memory.id}`, { method: "PATCH", body: { pinned: !memory.pinned } })) }, pin),
      el("button", { type: "button", className: "secondary", onclick: () => editor(memory, item) }, "Edit"),
      el("button", { type: "button", className: "secondary", onclick: () =>
        act(() => api(`${base}/${memory.id}`, { method: "DELETE" }), "Forgotten.") }, "Delete")),
  ].filter(Boolean));
  return item;
}

let shown = "";

function render(memories) {
  shown = JSON.stringify(memories.map(({ id, text, pinned }) => [id, text, pinned]));
  panel.hidden = false;
  list.replaceChildren(...memories.map(memoryItem));
  if (!memories.length) list.append(el("li", { className: "muted" }, "Nothing yet."));
}

async function refresh() {
  try {
    render(await api(base));
  } catch {
    panel.hidden = true; // signed out, or no longer this fan's page
  }
}

// After a reply the facts are extracted in the background (a paid call of its own): look again for a while.
async function refreshWhenChanged() {
  const before = shown;
  const changed = await pollUntil(async () => {
    const memories = await api(base).catch(() => null);
    return memories && JSON.stringify(memories.map(({ id, text, pinned }) => [id, text, pinned])) !== before
      ? memories : null;
  }, { intervalMs: 1000, timeoutMs: 20_000 });
  if (changed) render(changed);
}

if (panel && base) {
  document.getElementById("forget-all").addEventListener("click", () => {
    if (window.confirm("Forget everything this avatar remembers about you?")) {
      act(() => api(base, { method: "DELETE" }), "Everything forgotten.");
    }
  });
  document.addEventListener("chat:done", (event) => {
    const { memories_used: used = 0, memory_tokens: tokens = 0 } = event.detail ?? {};
    showStatus(status, "done", used ? `The last reply used ${used} memor${used === 1 ? "y" : "ies"} (${tokens} tokens).` : "");
    refreshWhenChanged();
  });
  refresh();
}
