// The launch form: save the avatar (POST /api/avatars, signed in), create it on-chain with its
// first keys from the same wallet, wait for the index to list it, then link to its page.
import { api, pollUntil } from "./api.js";
import { el, showStatus } from "./dom.js";
import { formatEth } from "./format.js";
import { onWalletChange, readProvider, sendTwinKeys, twinKeys, wallet } from "./wallet.js";

const LAUNCH_DEADLINE_S = 300;

const form = document.getElementById("launch-form");
const fields = document.getElementById("launch-fields");
const submit = document.getElementById("launch-submit");
const status = document.getElementById("launch-status");
const result = document.getElementById("launch-result");

let saved = null; // saved off-chain but not created on-chain yet: trying again reuses it
let launching = false;

function updateSubmit() {
  const connected = wallet.state === "connected";
  submit.disabled = launching || !connected;
  submit.textContent = connected ? "Launch" : "Connect a wallet to launch";
}

async function saveAvatar(avatar) {
  if (saved?.handle === avatar.handle && saved.creator === wallet.address) return saved;
  showStatus(status, "waiting", "Saving the avatar…");
  saved = await api("/api/avatars", { method: "POST", body: avatar });
  return saved;
}

async function createOnChain(avatar, keys) {
  const cost = await (await twinKeys()).getBuyPriceAfterFee(avatar.id, keys); // from key 0: nothing exists yet
  // The contract checks the deadline against block time, which can run ahead of this clock.
  const latest = await wallet.signer.provider.getBlock("latest");
  const deadline = Math.max(Math.floor(Date.now() / 1000), latest.timestamp) + LAUNCH_DEADLINE_S;
  const receipt = await sendTwinKeys(status, (contract) =>
    contract.createAvatar(avatar.id, avatar.metadata_uri, keys, cost, deadline, { value: cost }));
  if (!receipt) return;
  saved = null;
  showStatus(status, "confirmed", `Created on-chain for ${formatEth(cost)}. Waiting for the marketplace to list it…`);
  const listed = await pollUntil(async () => (await api(`/api/avatars/${avatar.id}`)).listed);
  showStatus(status, "confirmed", listed
    ? `${avatar.name} is live in the marketplace.`
    : `${avatar.name} is on-chain; the marketplace will list it in a moment.`);
  result.replaceChildren(el("a", { href: `/avatars/${avatar.id}`, className: "button" }, `Open ${avatar.name}'s page`));
}

// The avatar was saved but not created on-chain: its page finishes the launch (also later, from anywhere).
function offerToFinish(avatar) {
  status.append(" It is saved, not on-chain yet: try Launch again, or finish it later from its page. ");
  result.replaceChildren(el("a", { href: `/avatars/${avatar.id}`, className: "button secondary" }, "Finish launch later"));
}

// What launching costs before Launch: the first keys (price and fees, from key 0) and the network fee.
const TYPICAL_LAUNCH_GAS = 200_000n;
const costLine = document.getElementById("launch-cost");

async function showLaunchCost() {
  const keys = BigInt(Number(form.elements.keys.value) > 0 ? Math.floor(Number(form.elements.keys.value)) : 1);
  try {
    const contract = await twinKeys(readProvider());
    const price = await contract.getBuyPriceAfterFee(`0x${"0".repeat(32)}`, keys);
    const feePerGas = (await readProvider().getFeeData()).gasPrice ?? 0n;
    const networkFee = TYPICAL_LAUNCH_GAS * feePerGas;
    costLine.dataset.wei = String(price + networkFee);
    costLine.textContent = `Launching with ${keys} key${keys === 1n ? "" : "s"} costs ${formatEth(price)} `
      + `(keys and fees) plus about ${formatEth(networkFee)} network fee: ${formatEth(price + networkFee)} in all.`;
  } catch (error) {
    costLine.textContent = `The launch cost could not be read: ${error.message}`;
  }
}

async function launch(event) {
  event.preventDefault();
  if (launching || !form.reportValidity()) return;
  const { keys, ...avatar } = Object.fromEntries(new FormData(form)); // read before the fieldset is disabled
  launching = true;
  fields.disabled = true;
  result.replaceChildren();
  try {
    await createOnChain(await saveAvatar(avatar), BigInt(keys));
  } catch (error) {
    showStatus(status, "failed", error.detail ?? error.shortMessage ?? error.message, error.code ?? "error");
  } finally {
    if (saved && status.dataset.state === "failed") offerToFinish(saved);
    launching = false;
    fields.disabled = false;
    updateSubmit();
  }
}

fields.disabled = false;
form.addEventListener("submit", launch);
form.elements.keys.addEventListener("input", showLaunchCost);
showLaunchCost();
onWalletChange(updateSubmit);
