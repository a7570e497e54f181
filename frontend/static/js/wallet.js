// The wallet every page shares, shown in the header's #wallet area.
//
// Two kinds: any EIP-1193 browser wallet (window.ethereum), and on the embedded chain a built-in
// dev wallet whose private key stays in this browser's localStorage and whose transactions go,
// signed here, to the server's /rpc. Either way the wallet signs in with Sign-In with Ethereum
// (EIP-4361) against /api/auth, and pages send TwinKeys transactions through sendTwinKeys().
import { BrowserProvider, Contract, JsonRpcProvider, Wallet } from "ethers";
import { api } from "./api.js";
import { config } from "./config.js";
import { el, showStatus } from "./dom.js";
import { formatEth, shortAddress } from "./format.js";
import { describeTxError } from "./tx-errors.js";

const DEV_KEY_STORAGE = "twin.devWallet.privateKey";
const KIND_STORAGE = "twin.wallet.kind";
const RECEIPT_POLL_MS = 250; // the embedded chain mines at once: don't wait ethers' default 4 s
// ethers reuses an identical read for 250 ms; a balance read right after the faucet must be fresh.
const FRESH_READS = { cacheTimeout: -1 };
const SIGN_IN_VALID_MS = 10 * 60 * 1000;

// What pages read; `state` is disconnected, connecting, wrong_chain, signing (in) or connected (signed in).
export const wallet = { state: "disconnected", kind: null, signer: null, address: null, balance: null, note: "" };
const listeners = new Set();

export function onWalletChange(listener) {
  listeners.add(listener);
  listener(wallet);
}

function update(changes) {
  Object.assign(wallet, changes);
  renderWidget();
  for (const listener of listeners) listener(wallet);
}

// ------------------------------------------------------------------ signers

// The chain through the server's /rpc: for the dev wallet, and for reads (fees) by anyone.
let rpcProvider = null;

export function readProvider() {
  if (!rpcProvider) {
    rpcProvider = new JsonRpcProvider(new URL("/rpc", location.href).href, config.chain_id,
      { staticNetwork: true, ...FRESH_READS });
    rpcProvider.pollingInterval = RECEIPT_POLL_MS;
  }
  return rpcProvider;
}

function devSigner() {
  let key = localStorage.getItem(DEV_KEY_STORAGE);
  if (!key) {
    key = Wallet.createRandom().privateKey;
    localStorage.setItem(DEV_KEY_STORAGE, key);
  }
  return new Wallet(key, readProvider());
}

// The browser wallet's signer, asking for access only when the visitor clicked Connect.
async function browserSigner(askForAccess) {
  const provider = new BrowserProvider(window.ethereum, undefined, FRESH_READS);
  const accounts = await provider.send(askForAccess ? "eth_requestAccounts" : "eth_accounts", []);
  return accounts.length ? provider.getSigner(accounts[0]) : null;
}

async function onOurChain(signer) {
  return (await signer.provider.getNetwork()).chainId === BigInt(config.chain_id);
}

// ------------------------------------------------------------------ Sign-In with Ethereum

function siweMessage({ domain, address, chainId, nonce }) {
  const now = new Date();
  return [
    `${domain} wants you to sign in with your Ethereum account:`,
    address,
    "",
    "Sign in to Twin market",
    "",
    `URI: ${location.origin}`,
    "Version: 1",
    `Chain ID: ${chainId}`,
    `Nonce: ${nonce}`,
    `Issued At: ${now.toISOString()}`,
    `Expiration Time: ${new Date(now.getTime() + SIGN_IN_VALID_MS).toISOString()}`,
  ].join("\n");
}

async function signedInAddress() {
  return (await api("/api/auth/session").catch(() => null))?.address ?? null;
}

async function signIn(signer, address) {
  const { nonce, domain, chain_id: chainId } = await api("/api/auth/nonce");
  const message = siweMessage({ domain, address, chainId, nonce });
  const signature = await signer.signMessage(message);
  await api("/api/auth/verify", { method: "POST", body: { message, signature } });
}

// ------------------------------------------------------------------ connect, fund, sign out

async function connect(kind, { interactive }) {
  update({ state: "connecting", note: "" });
  try {
    const signer = kind === "dev" ? devSigner() : await browserSigner(interactive);
    if (!signer) return update({ state: "disconnected", note: "" });
    if (kind === "browser" && !(await onOurChain(signer))) return update({ state: "wrong_chain", kind, note: "" });
    const address = await signer.getAddress();
    if ((await signedInAddress()) !== address) {
      // A browser wallet only signs when asked to; the dev wallet signs by itself.
      if (kind === "browser" && !interactive) return update({ state: "disconnected", note: "" });
      update({ state: "signing", note: kind === "browser" ? "Sign the message in your wallet." : "" });
      await signIn(signer, address);
    }
    localStorage.setItem(KIND_STORAGE, kind);
    update({ state: "connected", kind, signer, address, note: "" });
  } catch (error) {
    update({ state: "disconnected", signer: null, address: null, note: describeTxError(error).message });
    return;
  }
  // Signed in: a balance the node is too busy to give now does not sign the wallet out (the next
  // transaction or Fund reads it again).
  await refreshBalance().catch(() => update({ note: "Balance not available right now." }));
}

// A page's "connect" button (the trade panel's when signed out): the dev wallet on the embedded
// chain, else the browser's.
export function connectWallet() {
  return connect(config.embedded_chain || !window.ethereum ? "dev" : "browser", { interactive: true });
}

async function refreshBalance() {
  if (wallet.state !== "connected") return;
  update({ balance: await wallet.signer.provider.getBalance(wallet.address) });
}

async function fund() {
  update({ note: "Funding…" });
  try {
    await api("/api/dev/faucet", { method: "POST", body: { address: wallet.address } });
    update({ note: "" });
    await refreshBalance();
  } catch (error) {
    update({ note: describeTxError(error).message });
  }
}

async function signOut() {
  await api("/api/auth/logout", { method: "POST" }).catch(() => null);
  localStorage.removeItem(KIND_STORAGE); // the dev key stays, and so do its funds
  update({ state: "disconnected", kind: null, signer: null, address: null, balance: null, note: "" });
}

async function switchChain() {
  try {
    await window.ethereum.request({
      method: "wallet_switchEthereumChain", params: [{ chainId: "0x" + config.chain_id.toString(16) }],
    });
  } catch (error) {
    update({ note: describeTxError(error).message });
  }
}

// ------------------------------------------------------------------ the header widget

const widget = document.getElementById("wallet");

function button(label, onclick, className = "") {
  return el("button", { type: "button", onclick, className }, label);
}

function widgetContent() {
  switch (wallet.state) {
    case "connecting":
      return [el("span", {}, "Connecting…")];
    case "signing":
      return [el("span", {}, "Signing in…")];
    case "wrong_chain":
      return [el("span", {}, `Wrong network: Twin market runs on chain ${config.chain_id}.`),
        button("Switch network", switchChain)];
    case "connected":
      return [
        el("code", { title: wallet.address }, shortAddress(wallet.address)),
        el("span", { "data-balance": "" }),
        wallet.kind === "dev" ? button("Fund", fund, "secondary") : null,
        button("Sign out", signOut, "secondary"),
      ];
    default: {
      const choices = [
        config.embedded_chain ? button("Use dev wallet", () => connect("dev", { interactive: true })) : null,
        window.ethereum ? button("Connect wallet", () => connect("browser", { interactive: true })) : null,
      ].filter(Boolean);
      return choices.length ? choices : [el("span", {}, "No wallet found: install a browser wallet to trade.")];
    }
  }
}

// Buttons are rebuilt only when the wallet itself changes, never for a balance or a note: a button
// replaced under the pointer or the keyboard focus would lose the click or the focus.
let renderedFor = null;

function renderWidget() {
  widget.dataset.state = wallet.state;
  widget.dataset.address = wallet.address ?? "";
  const renderFor = `${wallet.state}|${wallet.kind}|${wallet.address}`;
  if (renderFor !== renderedFor) {
    widget.replaceChildren(...widgetContent(), el("span", { className: "wallet-note", role: "status" }));
    renderedFor = renderFor;
  }
  const balance = widget.querySelector("[data-balance]");
  if (balance) {
    balance.dataset.balance = String(wallet.balance ?? "");
    balance.textContent = wallet.balance === null ? "" : formatEth(wallet.balance);
  }
  widget.querySelector(".wallet-note").textContent = wallet.note;
}

// ------------------------------------------------------------------ TwinKeys transactions

let abi = null;

export async function twinKeys(runner = wallet.signer) {
  abi ??= await api("/abi/TwinKeys.json");
  return new Contract(config.twin_keys_address, abi, runner);
}

// Send one TwinKeys call, `send(contract)`, from the wallet and show each step in `status`
// (data-state: signing, pending, confirmed, failed; data-reason says why it failed).
// Returns the receipt, or null when nothing was confirmed.
export async function sendTwinKeys(status, send) {
  const show = (state, message, reason) => showStatus(status, state, message, reason);
  if (wallet.state !== "connected") {
    show("failed", "Connect a wallet first.", "not_connected");
    return null;
  }
  delete status.dataset.txHash;
  let contract = null;
  try {
    show("signing", wallet.kind === "dev" ? "Signing with the dev wallet…" : "Confirm the transaction in your wallet…");
    contract = await twinKeys();
    const transaction = await send(contract);
    status.dataset.txHash = transaction.hash;
    show("pending", `Transaction ${shortAddress(transaction.hash)} pending…`);
    const receipt = await transaction.wait();
    show("confirmed", `Confirmed in block ${receipt.blockNumber}.`);
    return receipt;
  } catch (error) {
    const { reason, message } = describeTxError(error, contract?.interface);
    show("failed", message, reason);
    return null;
  } finally {
    refreshBalance().catch(() => null);
  }
}

// ------------------------------------------------------------------ start

for (const element of document.querySelectorAll(".needs-script")) element.remove();
if (window.ethereum) {
  // Another account or chain changes everything on the page: start over, as wallets advise.
  window.ethereum.on?.("accountsChanged", () => location.reload());
  window.ethereum.on?.("chainChanged", () => location.reload());
}
const remembered = localStorage.getItem(KIND_STORAGE);
if (remembered === "dev" && config.embedded_chain) connect("dev", { interactive: false });
else if (remembered === "browser" && window.ethereum) connect("browser", { interactive: false });
else renderWidget();
