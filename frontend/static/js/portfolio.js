// The portfolio is rendered on the server for the signed-in wallet; render it again when that changes.
// The network fees its trades paid come from the chain (their receipts), and the P&L after them.
import { api } from "./api.js";
import { formatEth } from "./format.js";
import { followSignedInWallet } from "./session.js";
import { readProvider } from "./wallet.js";

const TRADE_PAGES = 20; // of 100 trades: enough for any dev wallet; beyond, the sum says "at least"

const root = document.getElementById("portfolio");
followSignedInWallet(root.dataset.renderedFor);

async function tradeHashes(address) {
  const hashes = new Set();
  let cursor = null;
  for (let page = 0; page < TRADE_PAGES; page += 1) {
    const params = new URLSearchParams({ limit: 100, ...(cursor ? { cursor } : {}) });
    const trades = await api(`/api/wallets/${address}/trades?${params}`);
    for (const trade of trades.items) hashes.add(trade.tx_hash);
    cursor = trades.next_cursor;
    if (!cursor) return { hashes, complete: true };
  }
  return { hashes, complete: false };
}

async function showNetworkFees(address) {
  const gasCell = root.querySelector("[data-total=gas]");
  const afterCell = root.querySelector("[data-total=pnl_after_gas]");
  if (!gasCell) return;
  const { hashes, complete } = await tradeHashes(address);
  const receipts = await Promise.all([...hashes].map((hash) => readProvider().getTransactionReceipt(hash)));
  const gas = receipts.reduce((sum, receipt) => sum + (receipt ? receipt.gasUsed * receipt.gasPrice : 0n), 0n);
  const after = BigInt(root.querySelector("[data-total=pnl]").dataset.wei) - gas;
  gasCell.dataset.wei = String(gas);
  gasCell.textContent = `${complete ? "" : "at least "}${formatEth(gas)}`;
  afterCell.dataset.wei = String(after);
  afterCell.textContent = `${after > 0n ? "+" : ""}${formatEth(after)}`;
  afterCell.className = after > 0n ? "gain" : after < 0n ? "loss" : "";
}

if (root.dataset.renderedFor) showNetworkFees(root.dataset.renderedFor).catch(() => null);
