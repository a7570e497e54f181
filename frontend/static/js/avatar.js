// The avatar page: charts, a buy/sell panel with a live quote, and the chat button, which unlocks
// once the index shows that the wallet holds a key.
//
// The transaction sends exactly the quote on screen (its maxTotalCost or minProceeds and its
// deadline), so if the price moved past the slippage tolerance the contract refuses it.
import { api, pollUntil } from "./api.js";
import { drawCurve, drawPriceHistory, drawTradeLine } from "./charts.js";
import { el, showStatus } from "./dom.js";
import { formatEth, shortAddress } from "./format.js";
import { onActivity, startLive } from "./live.js";
import { connectWallet, onWalletChange, readProvider, sendTwinKeys, twinKeys, wallet } from "./wallet.js";

const QUOTE_REFRESH_MS = 30_000;
// Gas a trade takes when it cannot be estimated for this wallet (signed out): measured on TwinKeys,
// rounded up; the estimate replaces it as soon as a wallet is connected.
const TYPICAL_GAS = { buy: 110_000n, sell: 80_000n };
const TRADES_SHOWN = 20; // as many as the server renders (app/web/controllers.py)
const HOLDERS_SHOWN = 10;
const MIN_CANDLES = 8; // fewer read as scattered dots: the trades themselves are drawn instead

const root = document.getElementById("avatar");
const avatarId = root.dataset.avatarId;
const form = document.getElementById("trade-form");
const fields = document.getElementById("trade-fields");
const submit = document.getElementById("trade-submit");
const status = document.getElementById("trade-status");
const quoteProblem = document.getElementById("quote-problem");
const chatLink = document.getElementById("chat-link");
const chatHint = document.getElementById("chat-hint");
const curveChart = document.getElementById("curve-chart");
const priceChart = document.getElementById("price-chart");
const intervalSelect = document.getElementById("candle-interval");
const curve = JSON.parse(document.getElementById("curve-data").textContent);

let quote = null; // the quote on screen: exactly what the next transaction sends
let quoteRequest = 0; // answers to older requests are dropped
let quoteTimer = null;
let sending = false;
let held = null; // keys the connected wallet holds (on-chain), null when not connected

const keysText = (count) => `${count} key${count === 1 ? "" : "s"}`;

// ------------------------------------------------------------------ quote

function tradeInput() {
  const side = form.elements.side.value;
  const amount = Number(form.elements.amount.value);
  const slippagePercent = Number(form.elements.slippage.value);
  if (!Number.isInteger(amount) || amount < 1) return { side, problem: "Enter a whole number of keys, at least 1." };
  if (!(slippagePercent >= 0 && slippagePercent <= 50)) return { side, problem: "Slippage must be between 0 and 50 %." };
  if (side === "sell" && held !== null && amount > held) {
    return { side, problem: held ? `You hold ${keysText(held)}: you can sell at most ${held}.` : "You hold no keys to sell." };
  }
  return { side, amount, slippageBps: Math.round(slippagePercent * 100) };
}

function showQuote(shown, problem = "") {
  const side = shown?.side ?? form.elements.side.value;
  for (const cell of document.querySelectorAll("[data-quote]")) {
    const field = cell.dataset.quote === "bound" ? (side === "buy" ? "max_total_cost" : "min_proceeds") : cell.dataset.quote;
    const wei = shown?.[field];
    cell.textContent = wei === undefined || wei === null ? "—" : formatEth(wei);
    cell.dataset.wei = wei ?? "";
  }
  document.getElementById("total-label").textContent = side === "buy" ? "Total cost" : "You receive";
  document.getElementById("all-in-label").textContent = side === "buy" ? "All in, with the network fee" : "Net, after the network fee";
  document.getElementById("bound-label").textContent = side === "buy" ? "Most you pay" : "Least you receive";
  quoteProblem.textContent = problem;
  const list = document.getElementById("quote"); // what the figures are a quote for
  list.dataset.side = shown ? side : "";
  list.dataset.amount = shown?.amount ?? "";
  updateSubmit();
}

async function refreshQuote() {
  clearTimeout(quoteTimer);
  const request = ++quoteRequest;
  const input = tradeInput();
  quote = null;
  if (input.problem) return showQuote(null, input.problem);
  try {
    const params = new URLSearchParams({ side: input.side, amount: input.amount, slippage_bps: input.slippageBps });
    const fresh = await api(`/api/avatars/${avatarId}/quote?${params}`);
    if (request !== quoteRequest) return;
    const fee = await networkFee(fresh).catch(() => null);
    if (request !== quoteRequest) return;
    quote = fresh;
    showQuote({ ...fresh, ...fee });
  } catch (error) {
    if (request !== quoteRequest) return;
    showQuote(null, error.detail ?? error.message);
  }
  quoteTimer = setTimeout(refreshQuote, QUOTE_REFRESH_MS);
}

// What the chain charges to mine the trade: its gas (estimated for this wallet, else typical) times
// the current fee per gas; with the quote, what the trade costs (or pays) all in.
async function networkFee(shown) {
  const feePerGas = (await readProvider().getFeeData()).gasPrice ?? 0n;
  let gas = TYPICAL_GAS[shown.side];
  let estimated = false;
  if (wallet.state === "connected") {
    const keys = await twinKeys();
    gas = await (shown.side === "buy"
      ? keys.buyKeys.estimateGas(avatarId, shown.amount, BigInt(shown.max_total_cost), shown.deadline, { value: BigInt(shown.max_total_cost) })
      : keys.sellKeys.estimateGas(avatarId, shown.amount, BigInt(shown.min_proceeds), shown.deadline)).catch(() => gas);
    estimated = true;
  }
  const fee = gas * feePerGas;
  const total = BigInt(shown.total);
  const allIn = shown.side === "buy" ? total + fee : total - fee;
  const note = document.getElementById("network-fee-note");
  // Per gas in gwei, as wallets show it (display only: the fee itself stays in wei).
  const gwei = (Number(feePerGas) / 1e9).toPrecision(3);
  note.textContent = `${estimated ? "Estimated" : "Typical"} gas ${gas.toLocaleString("en-US")} × ${gwei} gwei per gas, paid to the network, not to Twin market.`;
    + (allIn < 0n ? " The network fee is larger than what you receive: this sale loses money." : "");
  return { network_fee: String(fee), all_in: String(allIn) };
}

function updateSubmit() {
  const side = form.elements.side.value;
  const connected = wallet.state === "connected";
  const connecting = wallet.state === "connecting" || wallet.state === "signing";
  submit.disabled = sending || connecting || (connected && !quote);
  submit.textContent = !connected ? "Connect a wallet to trade" : side === "buy" ? "Buy" : "Sell";
}

// ------------------------------------------------------------------ holdings

async function showHolding() {
  const holding = document.getElementById("holding");
  const max = document.getElementById("trade-max");
  held = null;
  if (wallet.state === "connected") {
    held = Number(await (await twinKeys()).keysBalance(avatarId, wallet.address));
  }
  holding.textContent = held === null ? "" : `You hold ${keysText(held)}.`;
  max.hidden = held === null || form.elements.side.value !== "sell";
  max.disabled = !held;
}

// ------------------------------------------------------------------ trade

async function trade(event) {
  event.preventDefault();
  if (wallet.state !== "connected") {
    await connectWallet();
    return;
  }
  const sent = quote;
  if (!sent || sending) return;
  sending = true;
  updateSubmit();
  const receipt = await sendTwinKeys(status, (keys) => (sent.side === "buy"
    ? keys.buyKeys(avatarId, sent.amount, BigInt(sent.max_total_cost), sent.deadline, { value: BigInt(sent.max_total_cost) })
    : keys.sellKeys(avatarId, sent.amount, BigInt(sent.min_proceeds), sent.deadline)));
  if (receipt) await Promise.all([afterTrade(), showHolding()]);
  sending = false;
  await refreshQuote();
}

// The chain has the trade; wait until the index does too, then show the new state.
async function afterTrade() {
  const onChain = await (await twinKeys()).keysBalance(avatarId, wallet.address);
  const confirmed = status.textContent;
  status.textContent = `${confirmed} Updating the index…`;
  const indexed = await pollUntil(async () => ((await indexedKeys(wallet.address)) === Number(onChain) ? true : null));
  await Promise.all([showChatAccess(), refreshMarket(), refreshPriceHistory()]);
  status.textContent = indexed
    ? `${confirmed} You hold ${keysText(Number(onChain))}.`
    : `${confirmed} The index has not caught up yet; reload in a moment.`;
}

// ------------------------------------------------------------------ chat access

async function indexedKeys(address) {
  const holdings = await api(`/api/wallets/${address}/holdings`);
  return holdings.find((holding) => holding.avatar_id === avatarId)?.balance ?? 0;
}

async function showChatAccess() {
  let hint = "Connect a wallet and hold a key to chat.";
  let open = false;
  if (wallet.state === "connected") {
    const isCreator = wallet.address === root.dataset.creator;
    const keys = await indexedKeys(wallet.address).catch(() => 0);
    open = isCreator || keys > 0;
    hint = isCreator ? "You created this avatar." : open ? `You hold ${keysText(keys)}.` : "Hold a key to chat.";
  }
  if (open) chatLink.href = `/avatars/${avatarId}/chat`;
  else chatLink.removeAttribute("href");
  chatLink.setAttribute("aria-disabled", String(!open));
  chatHint.textContent = hint;
}

// ------------------------------------------------------------------ market data

async function refreshMarket() {
  const [profile, trades, holders] = await Promise.all([
    api(`/api/avatars/${avatarId}`), api(`/api/avatars/${avatarId}/trades?limit=${TRADES_SHOWN}`),
    api(`/api/avatars/${avatarId}/holders?limit=${HOLDERS_SHOWN}`),
  ]);
  for (const cell of document.querySelectorAll("[data-stat]")) {
    const value = profile.market[cell.dataset.stat];
    cell.textContent = "wei" in cell.dataset ? formatEth(value) : value;
    if ("wei" in cell.dataset) cell.dataset.wei = value;
  }
  document.getElementById("trades").replaceChildren(...trades.items.map((item) => el("tr", {},
    el("td", { "data-label": "When" }, new Date(item.timestamp).toISOString().slice(0, 16).replace("T", " ") + " UTC"),
    el("td", { "data-label": "Trader" }, el("code", { title: item.trader }, shortAddress(item.trader))),
    el("td", { "data-label": "Side" }, item.side),
    el("td", { className: "num", "data-label": "Keys" }, String(item.amount)),
    el("td", { className: "num", "data-label": "Per key" }, formatEth(BigInt(item.price) / BigInt(item.amount))),
    el("td", { className: "num", "data-label": "Supply after" }, String(item.supply_after)))));
  document.getElementById("holders").replaceChildren(...holders.items.map((item) => el("li", {},
    el("code", { title: item.holder }, shortAddress(item.holder)), `: ${keysText(item.balance)}`)));
  drawCurve(curveChart, curve.points, profile.market.supply, profile.market.next_key_price);
}

async function refreshPriceHistory() {
  try {
    const candles = await api(`/api/avatars/${avatarId}/candles?interval=${intervalSelect.value}`);
    if (candles.length >= MIN_CANDLES) {
      drawPriceHistory(priceChart, candles, Number(intervalSelect.selectedOptions[0].dataset.seconds));
    } else {
      const [trades, profile] = await Promise.all([api(`/api/avatars/${avatarId}/trades?limit=100`),
        api(`/api/avatars/${avatarId}`)]);
      drawTradeLine(priceChart, trades.items, profile.market.next_key_price);
    }
  } catch (error) {
    priceChart.replaceChildren(el("p", { className: "chart-empty" }, `The price history did not load: ${error.message}`));
  }
}

// ------------------------------------------------------------------ an unfinished launch

const LAUNCH_DEADLINE_S = 300;

// Its creator sends the on-chain step again: createAvatar with its first key.
function setUpFinishLaunch() {
  const button = document.getElementById("finish-launch");
  const finishStatus = document.getElementById("finish-status");
  const metadataUri = document.getElementById("unlisted").dataset.metadataUri;
  onWalletChange(() => { button.hidden = wallet.state !== "connected" || wallet.address !== root.dataset.creator; });
  button.addEventListener("click", async () => {
    button.disabled = true;
    const cost = await (await twinKeys()).getBuyPriceAfterFee(avatarId, 1n);
    const latest = await wallet.signer.provider.getBlock("latest");
    const deadline = Math.max(Math.floor(Date.now() / 1000), latest.timestamp) + LAUNCH_DEADLINE_S;
    const receipt = await sendTwinKeys(finishStatus, (keys) =>
      keys.createAvatar(avatarId, metadataUri, 1n, cost, deadline, { value: cost }));
    if (!receipt) {
      button.disabled = false;
      return;
    }
    showStatus(finishStatus, "confirmed", "Created on-chain. Waiting for the marketplace to list it…");
    if (await pollUntil(async () => (await api(`/api/avatars/${avatarId}`)).listed)) location.reload();
  });
}

// ------------------------------------------------------------------ start

drawCurve(curveChart, curve.points, curve.supply, curve.next_key_price);
refreshPriceHistory();
intervalSelect.addEventListener("change", refreshPriceHistory);
if (root.dataset.listed === "true") {
  fields.disabled = false;
  form.addEventListener("input", refreshQuote);
  form.addEventListener("change", (event) => {
    if (event.target.name === "side") showHolding().then(refreshQuote);
  });
  document.getElementById("trade-max").addEventListener("click", () => {
    form.elements.amount.value = String(held ?? 1);
    refreshQuote();
  });
  form.addEventListener("submit", trade);
  refreshQuote();
} else {
  quoteProblem.textContent = "Trading opens once the avatar is on-chain.";
  setUpFinishLaunch();
}
// Someone else traded: the figures, the charts and the quote follow.
onActivity((event) => {
  if (event.avatar_id !== avatarId || sending || event.kind === "milestone") return;
  refreshMarket().catch(() => null);
  refreshPriceHistory();
  if (quote) refreshQuote();
});
startLive();
let shownFor = null;
onWalletChange(() => {
  updateSubmit();
  const who = `${wallet.state}:${wallet.address}`;
  if (who !== shownFor) { // not on every balance update
    showChatAccess();
    if (root.dataset.listed === "true") showHolding().then(refreshQuote);
  }
  shownFor = who;
});
