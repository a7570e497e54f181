// Money is BigInt wei everywhere; these turn it into text (and chart pixels) for display only.
// formatEth follows app/web/formatting.py so server- and browser-rendered amounts read alike.

const ONE_ETHER = 10n ** 18n;
const DECIMALS_ABOVE_ONE_ETHER = 6;
const SIGNIFICANT_DIGITS_BELOW = 4;

// Rounded down, trailing zeros dropped: 6 decimals from 1 ETH up, 4 significant digits below.
// `unit` names another 18-decimal token (OPG, which pays the inference nodes).
export function formatEth(wei, unit = "ETH") {
  const amount = BigInt(wei);
  const magnitude = amount < 0n ? -amount : amount;
  const whole = magnitude / ONE_ETHER;
  const fraction = (magnitude % ONE_ETHER).toString().padStart(18, "0");
  const leadingZeros = fraction.length - fraction.replace(/^0+/, "").length;
  const shown = whole ? DECIMALS_ABOVE_ONE_ETHER : Math.min(18, leadingZeros + SIGNIFICANT_DIGITS_BELOW);
  const digits = fraction.slice(0, shown).replace(/0+$/, "");
  return `${amount < 0n ? "-" : ""}${whole.toLocaleString("en-US")}${digits ? "." + digits : ""} ${unit}`;
}

export function shortAddress(address) {
  return address.length > 12 ? `${address.slice(0, 6)}…${address.slice(-4)}` : address;
}

// Charts only: a float is fine for pixels, never for amounts.
export function weiToEthNumber(wei) {
  return Number(BigInt(wei)) / 1e18;
}
