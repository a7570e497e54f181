// Why a wallet request or a TwinKeys transaction failed, in words a trader can act on.
// `reason` (rejected, insufficient_funds, slippage, deadline, reverted, an API code, error) lands
// in the status element's data-reason for styling and tests.
import { ApiError } from "./api.js";
import { config } from "./config.js";
import { formatEth } from "./format.js";

const NEW_QUOTE = "Get a new quote or allow more slippage.";

// TwinKeys' custom errors (contracts/TwinKeys.sol), decoded by ethers from the ABI.
const CONTRACT_ERRORS = {
  TotalCostAboveMax: ["slippage", ([cost, max]) =>
    `Slippage exceeded: the keys now cost ${formatEth(cost)}, above your limit of ${formatEth(max)}. ${NEW_QUOTE}`],
  ProceedsBelowMin: ["slippage", ([proceeds, min]) =>
    `Slippage exceeded: selling now pays ${formatEth(proceeds)}, below your minimum of ${formatEth(min)}. ${NEW_QUOTE}`],
  DeadlineExpired: ["deadline", () => "The quote's deadline passed before the transaction ran. Get a new quote and send again."],
  InsufficientPayment: ["insufficient_funds", ([cost, paid]) =>
    `The transaction paid ${formatEth(paid)} but the keys cost ${formatEth(cost)}.`],
  InsufficientKeys: ["reverted", ([balance, amount]) => `You hold ${balance} keys, fewer than the ${amount} you tried to sell.`],
  CannotSellLastKey: ["reverted", () => "The last key of an avatar cannot be sold: it stays with the curve."],
  AvatarExists: ["reverted", () => "An avatar with this id already exists on-chain."],
  AvatarNotFound: ["reverted", () => "This avatar is not on-chain yet."],
  ZeroAmount: ["reverted", () => "Trade at least one key."],
  EnforcedPause: ["reverted", () => "Buying is paused for now; selling stays open."],
  NothingToWithdraw: ["reverted", () => "There are no fees to withdraw: they were withdrawn already."],
  NotCreator: ["reverted", () => "Only the avatar's creator can withdraw its fees; connect the wallet that created it."],
};

// ethers decodes a revert only for calls; a transaction's gas estimate brings the raw data.
function decodeRevert(error, contractInterface) {
  if (error?.revert) return error.revert;
  try {
    return error?.data ? contractInterface?.parseError(error.data) : null;
  } catch {
    return null;
  }
}

// contractInterface: the TwinKeys contract's ethers Interface, to decode revert data.
export function describeTxError(error, contractInterface = null) {
  if (error?.code === "ACTION_REJECTED") {
    return { reason: "rejected", message: "You rejected the request in your wallet; nothing was sent." };
  }
  const revert = decodeRevert(error, contractInterface);
  const known = CONTRACT_ERRORS[revert?.name];
  if (known) return { reason: known[0], message: known[1](revert.args) };
  // Wallets say "insufficient funds"; the embedded chain says "does not have enough balance" or "cannot afford".
  const text = [error?.shortMessage, error?.info?.error?.message, error?.error?.message, error?.message].join(" ");
  if (error?.code === "INSUFFICIENT_FUNDS" || /insufficient funds|not have enough balance|cannot afford/i.test(text)) {
    const topUp = config.embedded_chain ? " Fund tops up the dev wallet." : "";
    return { reason: "insufficient_funds", message: `Not enough ETH in the wallet for this transaction and its gas.${topUp}` };
  }
  if (error instanceof ApiError) return { reason: error.code, message: error.detail };
  if (error?.code === "CALL_EXCEPTION") {
    // No revert data: the node refused the gas estimate without saying why (an avatar id not bound to
    // this wallet, a network hiccup); ethers calls it "missing revert data".
    const why = /missing revert data/i.test(text)
      ? "the network refused it without a reason (often a wallet other than the one that started it, or a network hiccup)"
      : error.shortMessage ?? error.message;
    return { reason: "reverted", message: `The contract refused the transaction: ${why}. Nothing was spent; try again.` };
  }
  if (error?.code === "NETWORK_ERROR" || error?.code === "TIMEOUT" || /failed to fetch/i.test(text)) {
    return { reason: "network", message: "The network could not be reached; nothing was sent. Try again in a moment." };
  }
  return { reason: "error", message: error?.shortMessage ?? error?.message ?? String(error) };
}
