// Live market figures: one websocket to /ws/activity; every trade or launch anyone makes arrives as
// an event, and each listener (the activity feed, a page's figures) takes what it shows.
import { formatEth } from "./format.js";

const RETRY_MS = [1000, 2000, 5000, 10000];
const listeners = new Set();
let attempt = 0;

export function onActivity(listener) {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

function connect(statusElement) {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/ws/activity`);
  socket.addEventListener("open", () => { attempt = 0; if (statusElement) statusElement.dataset.state = "on"; });
  socket.addEventListener("message", (message) => {
    const event = JSON.parse(message.data);
    for (const listener of listeners) listener(event);
  });
  socket.addEventListener("close", () => {
    if (statusElement) statusElement.dataset.state = "off";
    setTimeout(() => connect(statusElement), RETRY_MS[Math.min(attempt++, RETRY_MS.length - 1)]);
  });
  socket.addEventListener("error", () => socket.close());
}

// Figures marked data-stat inside [data-avatar-id] follow the avatar's trades on any page.

onActivity((event) => {
  for (const scope of document.querySelectorAll(`[data-avatar-id="${event.avatar_id}"]`)) {
    const price = scope.querySelector("[data-stat=next_key_price]");
    if (price) {
      price.dataset.wei = event.next_key_price;
      price.textContent = formatEth(event.next_key_price);
      price.classList.remove("flash"); void price.offsetWidth; price.classList.add("flash");
    }
    const supply = scope.querySelector("[data-stat=supply]");
    if (supply) supply.textContent = String(event.supply);
  }
});

export function startLive(statusElement = null) {
  connect(statusElement);
}

// Whether an event changes what a page rendered for `wallet` shows: the wallet's own trade or launch, or
// one of an avatar the page lists.
export function concernsPage(event, wallet) {
  return event.actor?.toLowerCase() === wallet.toLowerCase()
    || document.querySelector(`[data-avatar-id="${event.avatar_id}"]`) !== null;
}

// Pages whose figures the server renders for a wallet (portfolio, dashboard): when an event concerns them,
// fetch the page again and swap in its [data-live-region] elements (each with an id), so the figures are
// computed once, on the server. Events that arrive during a refresh lead to one more refresh after it.
// `concerns(event)`: whether the event changes something on the page; `refreshed()`: after each swap.
export function followLiveRegions(concerns, refreshed = () => {}) {
  let running = null;
  let again = false;
  async function refresh() {
    const response = await fetch(location.href, { credentials: "same-origin", headers: { accept: "text/html" } });
    if (!response.ok) return;
    const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
    for (const region of document.querySelectorAll("[data-live-region]")) {
      const replacement = fresh.getElementById(region.id);
      if (replacement) region.replaceWith(document.importNode(replacement, true));
    }
    refreshed();
  }
  onActivity((event) => {
    if (event.kind === "milestone" || !concerns(event)) return; // a milestone's trade came just before it
    if (running) { again = true; return; }
    running = (async () => {
      do {
        again = false;
        await refresh().catch(() => null); // the next event tries again
      } while (again);
      running = null;
    })();
  });
  startLive(document.getElementById("live-status"));
}
