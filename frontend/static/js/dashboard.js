// The creator dashboard, rendered on the server for the signed-in creator; here: the daily charts, the
// withdrawal of claimable fees from the wallet (TwinKeys.withdrawCreatorFees) and the edit form
// (PATCH /api/avatars/{id}). The figures and charts follow every trade of the creator's avatars live.
import { api, pollUntil } from "./api.js";
import { drawDaily } from "./charts.js";
import { showStatus } from "./dom.js";
import { formatEth, weiToEthNumber } from "./format.js";
import { concernsPage, followLiveRegions } from "./live.js";
import { followSignedInWallet } from "./session.js";
import { onWalletChange, sendTwinKeys, twinKeys, wallet } from "./wallet.js";

// Each chart: its figure per day, how to plot one value, and its unit.
const CHARTS = {
  holders_by_day: ["holders", Number, "holders"],
  volume_by_day: ["volume", weiToEthNumber, "ETH"],
  fees_by_day: ["fees earned", weiToEthNumber, "ETH"],
  chat_messages_by_day: ["messages", Number, "messages"],
  inference_spend_by_day: ["inference spend", weiToEthNumber, "OPG"], // x402 payments to the nodes
};

const root = document.getElementById("dashboard");
const shown = document.getElementById("creator-avatar");

const chartData = () => JSON.parse(document.getElementById("chart-data").textContent);

function drawCharts(figures) {
  const days = Object.keys(figures.holders_by_day); // every day of the window, in order
  for (const element of document.querySelectorAll("[data-chart]")) {
    const [label, plotted, unit] = CHARTS[element.dataset.chart];
    const byDay = figures[element.dataset.chart];
    drawDaily(element, days, label, days.map((day) => plotted(byDay[day] ?? 0)), unit);
  }
}

// ------------------------------------------------------------------ withdraw

const withdrawButton = document.getElementById("withdraw");
const withdrawStatus = document.getElementById("withdraw-status");
let withdrawing = false;

const claimable = () => BigInt(shown.querySelector("[data-stat=fees_claimable]").dataset.wei);

function updateWithdraw() {
  if (warnedFor !== null) return; // the warning's "Withdraw anyway" stays until clicked
  const connected = wallet.state === "connected";
  withdrawButton.disabled = withdrawing || !connected || claimable() === 0n;
  withdrawButton.textContent = !connected ? "Connect your wallet to withdraw"
    : claimable() === 0n ? "Nothing to withdraw yet" : `Withdraw ${formatEth(claimable())} to your wallet`;
}

function showFigures(row) {
  for (const cell of shown.querySelectorAll("[data-stat]")) {
    const value = row[cell.dataset.stat];
    if ("wei" in cell.dataset) cell.dataset.wei = value;
    cell.textContent = "wei" in cell.dataset ? formatEth(value) : value;
  }
}

// Gas that costs more than the fees it withdraws: say so first, and withdraw on a second click.
let warnedFor = null;

async function networkFeeOfWithdrawal(avatarId) {
  const keys = await twinKeys();
  const gas = await keys.withdrawCreatorFees.estimateGas(avatarId, wallet.address);
  return gas * ((await wallet.signer.provider.getFeeData()).gasPrice ?? 0n);
}

async function withdraw() {
  const avatarId = shown.dataset.avatarId;
  const amount = claimable();
  if (warnedFor !== amount) {
    const fee = await networkFeeOfWithdrawal(avatarId).catch(() => 0n);
    if (fee >= amount) {
      warnedFor = amount;
      showStatus(withdrawStatus, "waiting", `The network fee (about ${formatEth(fee)}) is more than the ${formatEth(amount)} `
        + "you would withdraw: withdrawing now lowers your balance. Click again to withdraw anyway.", "gas_exceeds");
      withdrawButton.textContent = "Withdraw anyway";
      return;
    }
  }
  warnedFor = null;
  withdrawing = true;
  updateWithdraw();
  const receipt = await sendTwinKeys(withdrawStatus, (keys) => keys.withdrawCreatorFees(avatarId, wallet.address));
  if (receipt) {
    const confirmed = withdrawStatus.textContent;
    withdrawStatus.textContent = `${confirmed} ${formatEth(amount)} sent to your wallet; updating the figures…`;
    const claimed = BigInt(shown.querySelector("[data-stat=fees_claimed]").dataset.wei) + amount;
    // The claimable amount is read from the chain, what was withdrawn from the index: wait for both.
    const row = await pollUntil(async () => (await api("/api/creators/me/stats"))
      .find((stats) => stats.avatar_id === avatarId && BigInt(stats.fees_claimed) >= claimed));
    if (row) showFigures(row);
    withdrawStatus.textContent = `${confirmed} ${formatEth(amount)} sent to your wallet.`;
  }
  withdrawing = false;
  updateWithdraw();
}

// ------------------------------------------------------------------ edit

const editForm = document.getElementById("edit-form");
const editFields = document.getElementById("edit-fields");
const editStatus = document.getElementById("edit-status");

async function save(event) {
  event.preventDefault();
  if (!editForm.reportValidity()) return;
  const changes = Object.fromEntries(new FormData(editForm)); // read before the fieldset is disabled
  editFields.disabled = true;
  showStatus(editStatus, "pending", "Saving…");
  try {
    const avatar = await api(`/api/avatars/${shown.dataset.avatarId}`, { method: "PATCH", body: changes });
    document.getElementById("shown-name").firstChild.textContent = `${avatar.name} `;
    showStatus(editStatus, "done", "Saved: the next replies answer with this persona.");
  } catch (error) {
    showStatus(editStatus, "failed", `Not saved: ${error.detail ?? error.message}`, error.code ?? "error");
  } finally {
    editFields.disabled = false;
  }
}

// ------------------------------------------------------------------ start

followSignedInWallet(root.dataset.renderedFor);
if (root.dataset.renderedFor) {
  followLiveRegions((event) => concernsPage(event, root.dataset.renderedFor), () => {
    if (!shown) return;
    drawCharts(chartData());
    updateWithdraw();
  });
}
if (shown) {
  drawCharts(chartData());
  withdrawButton.addEventListener("click", withdraw);
  onWalletChange(updateWithdraw);
  editForm.addEventListener("submit", save);
  editFields.disabled = false;
}
