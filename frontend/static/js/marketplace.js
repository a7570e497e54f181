// The marketplace's live activity: new trades, launches and milestones join the top of the feed as they happen.
import { el } from "./dom.js";
import { formatEth, shortAddress } from "./format.js";
import { onActivity, startLive } from "./live.js";

const FEED_LENGTH = 12;
const feed = document.getElementById("activity");

function describe(event) {
  const actor = el("code", { title: event.actor }, shortAddress(event.actor));
  const keys = `${event.amount} key${event.amount === 1 ? "" : "s"}`;
  if (event.kind === "milestone") return [event.summary];
  if (event.kind === "launch") return ["launched by ", actor];
  return [actor, ` ${event.kind === "buy" ? "bought" : "sold"} ${keys} for ${formatEth(event.eth_amount)}`];
}

onActivity((event) => {
  if (!feed || feed.querySelector(`[data-key="${event.key}"]`)) return;
  feed.querySelector(".empty")?.remove();
  const when = new Date(event.at);
  const item = el("li", { "data-key": event.key, "data-kind": event.kind, className: "fresh" },
    el("a", { href: `/avatars/${event.avatar_id}` }, event.name), " ", ...describe(event),
    el("time", { className: "muted", dateTime: event.at }, when.toISOString().slice(0, 16).replace("T", " ") + " UTC"));
  feed.prepend(item);
  while (feed.children.length > FEED_LENGTH) feed.lastElementChild.remove();
});

startLive(document.getElementById("activity-live"));
