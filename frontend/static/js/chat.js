// The chat page: the fan's thread (GET /api/avatars/{id}/messages, newest first, "Load older") and a
// websocket to /ws/avatars/{id}/chat that streams each reply (README, "Chat"); the session cookie rides on
// the handshake. A message whose reply was under way when the socket dropped is sent again with the same
// client_msg_id once the socket is back: the server answers one client_msg_id once, and never pays twice.
import { api } from "./api.js";
import { el, showStatus } from "./dom.js";
import { formatEth } from "./format.js";
import { followSignedInWallet } from "./session.js";
import { verifyInBrowser } from "./verify.js";
import { connectWallet } from "./wallet.js";

const HISTORY_PAGE = 20;
const RECONNECT_DELAYS_MS = [500, 1_000, 2_000, 5_000, 10_000];
const POLICY_VIOLATION = 1008; // the server refused the socket: signed out, no key, unknown avatar

// Error codes (README, "Chat") in words; `detail` from the server is shown for the others.
const ERROR_TEXT = {
  rate_limited: "You are sending messages faster than this chat allows.",
  queue_full: "Every inference node is busy and the queue is full.",
  queue_expired: "Your message waited too long in the queue.",
  unavailable: "No inference node can answer right now.",
  upstream_failed: "The model broke off in the middle of the reply; nothing was charged for it.",
  verification_failed: "The reply's attestation did not verify, so its text was thrown away.",
  request_rejected: "The inference node refused the request.",
  internal_error: "Something went wrong on the server; the error was logged.",
  busy: "Wait for the reply under way before sending another message.",
  previously_failed: "The reply to this message stopped before its end (the connection dropped); send it again.",
};
// Refusals of a message before it was kept: it leaves the thread (and goes back into the input).
const NOT_KEPT = new Set(["rate_limited", "queue_full", "queue_expired", "no_key"]);

const root = document.getElementById("chat");
const avatarId = root.dataset.avatarId;
const thread = document.getElementById("thread");
const loadOlderButton = document.getElementById("load-older");
const status = document.getElementById("chat-status");
const form = document.getElementById("chat-form");
const fields = document.getElementById("chat-fields");
const input = document.getElementById("chat-input");
const sendButton = document.getElementById("chat-send");
const dialog = document.getElementById("attestation");

let socket = null;
let reconnectAttempt = 0;
// The message awaiting its done or error frame: { frame, userItem, replyItem, resent }; `resent`: its text
// so far is replaced by the first token of the answer to the resend (a finished reply comes back whole).
let inFlight = null;
let olderCursor = null;
let waitUntil = 0; // Date.now() before which a refused fan may not send
let locked = false; // no key any more: nothing more can be sent from this page

// ------------------------------------------------------------------ messages on screen

function messageItem(role, text, messageId = null) {
  const item = el("li", { className: `message ${role}` },
    el("p", { className: "message-text" }, text), el("p", { className: "message-meta" }));
  if (messageId !== null) item.dataset.messageId = messageId;
  return item;
}

const textOf = (item) => item.querySelector(".message-text");

function badge(label, className, title) {
  return el("span", { className: `badge ${className}`, title }, label);
}

// A reply's standing under its text: verified (a button that opens its attestation), not verified,
// failed verification, cut off, failed, or still being written.
function showReplyState(item, state, { costWei = "0", code = "" } = {}) {
  item.dataset.state = state;
  item.dataset.costWei = costWei;
  const paid = BigInt(costWei) > 0n
    ? el("span", { className: "muted" }, ` The platform paid ${formatEth(costWei, "OPG")} to the node.`) : null;
  const meta = {
    streaming: () => [badge("Writing…", "pending")],
    pending: () => [badge("Being written…", "pending")],
    verified: () => [el("button", {
      type: "button", className: "badge verified", "aria-haspopup": "dialog",
      title: "Show the node's signed attestation of this reply",
      onclick: (event) => openAttestation(item.dataset.messageId, event.currentTarget),
    }, "✓ Verified"), paid],
    unverified: () => [badge("Not verified", "plain", "This avatar's replies come without an attestation"), paid],
    verification_failed: () => [badge("✗ Failed verification", "bad", "Its attestation did not verify"), paid],
    incomplete: () => [badge("Cut off", "warn", "The reply stopped before its end: it is not verified")],
    failed: () => [badge(`No reply${code ? ` (${code})` : ""}`, "bad")],
  }[state]();
  item.querySelector(".message-meta").replaceChildren(...meta.filter(Boolean));
  if (state === "verification_failed") textOf(item).textContent = "(The text was discarded: it could not be verified.)";
}

function historyState(message) {
  if (message.status === "complete") return message.attested ? "verified" : "unverified";
  if (message.error_code === "verification_failed") return "verification_failed";
  return message.status; // pending, incomplete, failed
}

function historyItem(message) {
  const item = messageItem(message.role, message.content, message.id);
  if (message.role === "assistant") {
    showReplyState(item, historyState(message), { costWei: message.cost_wei, code: message.error_code ?? "" });
  }
  return item;
}

// ------------------------------------------------------------------ history

async function loadHistory({ older }) {
  const params = new URLSearchParams({ limit: HISTORY_PAGE });
  if (older) params.set("cursor", olderCursor);
  loadOlderButton.disabled = true;
  try {
    const page = await api(`/api/avatars/${avatarId}/messages?${params}`);
    const items = page.items.reverse().map(historyItem); // the API pages newest first
    const greeting = thread.querySelector(".greeting");
    if (older && greeting) greeting.after(...items);
    else if (older) thread.prepend(...items);
    else thread.append(...items);
    olderCursor = page.next_cursor;
    if (!older) items.at(-1)?.scrollIntoView({ block: "nearest" });
  } catch (error) {
    showStatus(status, "failed", `The conversation did not load: ${error.message}`);
  } finally {
    loadOlderButton.hidden = !olderCursor;
    loadOlderButton.disabled = false;
  }
}

// ------------------------------------------------------------------ the status line

let countdownTimer = null;

// `message`, then "Try again in N s." counting down; sending waits until it reaches zero.
function countDown(message, seconds) {
  clearInterval(countdownTimer);
  waitUntil = Date.now() + seconds * 1000;
  const tick = () => {
    const left = Math.ceil((waitUntil - Date.now()) / 1000);
    if (left > 0) return showStatus(status, "waiting", `${message} Try again in ${left} s.`, "retry_after");
    clearInterval(countdownTimer);
    showStatus(status, "done", `${message} You can send again now.`);
    updateForm();
  };
  tick();
  countdownTimer = setInterval(tick, 1000);
}

function showNoKey(detail) {
  locked = true;
  showStatus(status, "failed", `${detail.charAt(0).toUpperCase()}${detail.slice(1)}. `, "no_key");
  status.append(el("a", { href: `/avatars/${avatarId}` }, "Buy a key"));
  updateForm();
}

// ------------------------------------------------------------------ sending and receiving

function updateForm() {
  const open = socket?.readyState === WebSocket.OPEN;
  fields.disabled = locked;
  sendButton.disabled = locked || !open || inFlight !== null || Date.now() < waitUntil;
  sendButton.textContent = inFlight ? "Replying…" : "Send";
}

const newClientMsgId = () => Array.from(crypto.getRandomValues(new Uint8Array(16)),
  (byte) => byte.toString(16).padStart(2, "0")).join("");

function send(event) {
  event.preventDefault();
  const content = input.value.trim();
  if (!content || sendButton.disabled) return;
  const frame = { type: "message", client_msg_id: newClientMsgId(), content };
  inFlight = { frame, userItem: messageItem("user", content), replyItem: null };
  thread.append(inFlight.userItem);
  inFlight.userItem.scrollIntoView({ block: "nearest" });
  input.value = "";
  showStatus(status, "pending", "Sent; waiting for the reply…");
  socket.send(JSON.stringify(frame));
  updateForm();
}

function replyItem(messageId) {
  if (!inFlight.replyItem) {
    inFlight.replyItem = messageItem("assistant", "", messageId);
    showReplyState(inFlight.replyItem, "streaming");
    thread.append(inFlight.replyItem);
  }
  return inFlight.replyItem;
}

function finish() {
  inFlight.replyItem?.scrollIntoView({ block: "nearest" });
  inFlight = null;
  updateForm();
  input.focus();
}

function onFrame(frame) {
  if (frame.client_msg_id !== inFlight?.frame.client_msg_id) {
    if (frame.type === "error") showStatus(status, "failed", ERROR_TEXT[frame.code] ?? frame.detail, frame.code);
    return;
  }
  switch (frame.type) {
    case "queued":
      showStatus(status, "waiting", `Every node is busy: you are number ${frame.position} in the queue, `
        + `about ${frame.eta_s} s from a reply.`, "queued");
      break;
    case "token": {
      if (status.dataset.state !== "streaming") showStatus(status, "streaming", "");
      const text = textOf(replyItem(frame.message_id));
      if (inFlight.resent) text.textContent = "";
      inFlight.resent = false;
      text.append(frame.text);
      break;
    }
    case "done":
      showReplyState(replyItem(frame.message_id), frame.verified ? "verified" : "unverified", { costWei: frame.cost_wei });
      showStatus(status, "done", "");
      finish();
      document.dispatchEvent(new CustomEvent("chat:done", { detail: frame })); // the memory panel refreshes
      break;
    case "error":
      onError(frame);
      break;
  }
}

function onError(frame) {
  const text = ERROR_TEXT[frame.code] ?? frame.detail;
  if (frame.code === "in_progress") { // a resend while the first try's reply is still being written
    setTimeout(() => socket?.readyState === WebSocket.OPEN && inFlight && resend(), (frame.retry_after_s ?? 1) * 1000);
    return showStatus(status, "waiting", "The reply to your message is still being written; asking again shortly…");
  }
  if (!input.value) input.value = inFlight.frame.content; // to send again, as a new message
  if (NOT_KEPT.has(frame.code)) {
    inFlight.userItem.remove();
  } else { // kept, with no verified reply: say what became of it under the message
    const cut = inFlight.replyItem && textOf(inFlight.replyItem).textContent;
    const state = frame.code === "verification_failed" ? "verification_failed" : cut ? "incomplete" : "failed";
    showReplyState(replyItem(frame.message_id ?? null), state, { code: frame.code });
  }
  if (frame.code === "no_key") showNoKey(frame.detail);
  else if (frame.retry_after_s) countDown(text, frame.retry_after_s);
  else showStatus(status, "failed", text, frame.code);
  finish();
}

// ------------------------------------------------------------------ the socket, reconnected

function resend() {
  inFlight.resent = true;
  socket.send(JSON.stringify(inFlight.frame));
}

function connect() {
  const url = new URL(`/ws/avatars/${avatarId}/chat`, location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  if (reconnectAttempt === 0) showStatus(status, "waiting", "Connecting to the chat…", "connecting");
  socket = new WebSocket(url);
  socket.addEventListener("open", () => {
    const reconnected = reconnectAttempt > 0;
    reconnectAttempt = 0;
    if (inFlight) {
      showStatus(status, "pending", "Reconnected; asking again for the reply to your last message…");
      resend();
    } else {
      showStatus(status, "done", reconnected ? "Reconnected." : "");
    }
    updateForm();
  });
  socket.addEventListener("message", (event) => onFrame(JSON.parse(event.data)));
  socket.addEventListener("close", (event) => {
    socket = null;
    updateForm();
    if (event.code === POLICY_VIOLATION) {
      if (/key/.test(event.reason)) return showNoKey(event.reason);
      if (/sign in/i.test(event.reason)) return askToSignInAgain();
      return showStatus(status, "failed", `The chat refused the connection: ${event.reason}.`, "refused");
    }
    const delay = RECONNECT_DELAYS_MS[Math.min(reconnectAttempt, RECONNECT_DELAYS_MS.length - 1)];
    reconnectAttempt += 1;
    showStatus(status, "waiting", "The connection dropped; reconnecting…", "reconnecting");
    setTimeout(connect, delay);
  });
}

// The session ended under the page (the server restarted, or the session expired): a reply under way
// is marked cut off (the server settled it so), and one click signs in again and reconnects.
function abandonInFlight() {
  if (!inFlight) return;
  if (inFlight.replyItem) showReplyState(inFlight.replyItem, "incomplete");
  if (!input.value) input.value = inFlight.frame.content;
  inFlight = null;
}

function askToSignInAgain() {
  abandonInFlight();
  updateForm();
  showStatus(status, "failed", "Your session ended (the server restarted or it expired). ", "signed_out");
  status.append(el("button", {
    type: "button", onclick: async (event) => {
      event.currentTarget.disabled = true;
      await connectWallet();
      reconnectAttempt = 0;
      connect();
    },
  }, "Sign in again"));
}

// ------------------------------------------------------------------ attestation

async function openAttestation(messageId, opener) {
  const list = document.getElementById("attestation-fields");
  const problem = document.getElementById("attestation-problem");
  const verdict = document.getElementById("attestation-verdict");
  list.replaceChildren();
  showStatus(problem, "", "");
  showStatus(verdict, "pending", "Checking this reply in your browser…");
  dialog.addEventListener("close", () => opener.focus(), { once: true });
  dialog.showModal();
  let attestation;
  try {
    attestation = await api(`/api/messages/${messageId}/attestation`);
  } catch (error) {
    showStatus(verdict, "", "");
    showStatus(problem, "failed", `The attestation did not load: ${error.message}`, error.code ?? "error");
    return;
  }
  const rows = [
    ["Verification level", attestation.verification_level],
    ["Node", attestation.node_endpoint],
    ["TEE id", attestation.tee_id],
    ["Request hash", attestation.request_hash],
    ["Output hash", attestation.output_hash],
    ["Signature", attestation.signature],
    ["Signed at", new Date(attestation.timestamp * 1000).toISOString()],
    ["Signature scheme", attestation.signature_scheme],
    ["Node public key", attestation.node_public_key_pem],
  ];
  list.replaceChildren(...rows.flatMap(([term, value]) => [
    el("dt", {}, term),
    el("dd", {}, el("code", { "data-field": term }, value),
      el("button", { type: "button", className: "copy secondary", "aria-label": `Copy ${term}`,
        onclick: (event) => copy(value, event.currentTarget) }, "Copy"))]));
  const item = thread.querySelector(`[data-message-id="${messageId}"]`);
  const paid = BigInt(item?.dataset.costWei || "0");
  try {
    const check = await verifyInBrowser(attestation);
    if (!check.ok) {
      showStatus(verdict, "failed", `Do not trust this reply: ${check.problem}. Your browser refused it.`, "tampered");
      return;
    }
    const node = check.node;
    const since = node.registeredAt.toISOString().slice(0, 10);
    // The embedded default's node runs inside this server, reached at a name that is not on the network.
    const who = node.endpoint.endsWith(".in-process.invalid") ? "this server's built-in inference node"
      : `the node at ${node.endpoint}`;
    showStatus(verdict, "confirmed", `Signed by ${who}, registered on-chain since ${since}`
      + `${node.approved ? " and approved by the registry" : ""}. This server verified the signature when the reply `
      + `arrived, and your browser checked it again just now: both hashes recomputed, the RSA-PSS signature `
      + `checked against the key in the NodeRegistry contract.`
      + (paid > 0n ? ` The platform paid ${formatEth(paid, "OPG")} to the node for this reply; you paid nothing per message.` : ""),
    "verified");
  } catch (error) {
    showStatus(verdict, "failed", `Your browser could not check this reply: ${error.message}`, "error");
  }
}

async function copy(text, button) {
  await navigator.clipboard.writeText(text).catch(() => null);
  button.textContent = "Copied";
  setTimeout(() => { button.textContent = "Copy"; }, 1500);
}

// ------------------------------------------------------------------ start

followSignedInWallet(root.dataset.renderedFor);
if (form) {
  form.addEventListener("submit", send);
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  loadOlderButton.addEventListener("click", () => loadHistory({ older: true }));
  updateForm();
  loadHistory({ older: false }).then(connect); // the thread first: a reply sent now must come after it
} else if (thread) { // no key any more: the fan's own conversation, read-only
  loadOlderButton.addEventListener("click", () => loadHistory({ older: true }));
  loadHistory({ older: false });
}
