// Charts drawn with uPlot: on the avatar page the bonding curve with the current supply marked and the
// key price over time from the candles API; daily figures on the creator dashboard; the autoscale signal
// over time on the operations page.
import uPlot from "uplot";
import { el } from "./dom.js";
import { weiToEthNumber } from "./format.js";

const HEIGHT = 240;
const drawn = new Map(); // element → its uPlot, resized with the window

window.addEventListener("resize", () => {
  for (const [element, chart] of drawn) chart.setSize({ width: element.clientWidth, height: HEIGHT });
});

function clear(element) {
  drawn.get(element)?.destroy();
  drawn.delete(element);
  element.replaceChildren();
}

// A sentence in place of a chart that has nothing to draw.
export function showEmpty(element, text) {
  clear(element);
  element.append(el("p", { className: "chart-empty" }, text));
}

// yAxes: the y axes' own options (label, scale, side…) over the common ones.
function draw(element, xLabel, options, data, yAxes = [{ label: "ETH" }]) {
  clear(element);
  const ink = getComputedStyle(document.body).color; // canvas text follows the page's light or dark theme
  const axes = [
    { stroke: ink, label: xLabel },
    ...yAxes.map((axis) => ({ stroke: ink, size: 90, values: (_, ticks) => ticks.map((tick) => +tick.toPrecision(3)), ...axis })),
  ];
  const size = { width: element.clientWidth || 600, height: HEIGHT };
  drawn.set(element, new uPlot({ ...size, axes, legend: { live: false }, ...options }, data, element));
}

// points: [[key number, price of that key in wei], ...]; the marker sits at (supply, next key price).
export function drawCurve(element, points, supply, nextKeyPrice) {
  const prices = new Map(points.map(([key, wei]) => [key, weiToEthNumber(wei)]));
  const keys = [...new Set([...prices.keys(), supply])].sort((a, b) => a - b);
  draw(element, "keys in supply", {
    scales: { x: { time: false } },
    series: [
      { label: "supply" },
      { label: "price of the next key", stroke: "#4f46e5", width: 2, spanGaps: true },
      { label: "now", stroke: "#dc2626", width: 0, points: { show: true, size: 10, fill: "#dc2626" } },
    ],
  }, [keys, keys.map((key) => prices.get(key) ?? null),
    keys.map((key) => (key === supply ? weiToEthNumber(nextKeyPrice) : null))]);
}

// candles: the candles API's answer; intervalSeconds: their width, to frame a lone candle.
export function drawPriceHistory(element, candles, intervalSeconds) {
  if (!candles.length) return showEmpty(element, "No trades in this period yet.");
  const line = (label, stroke, dash) => ({ label, stroke, width: dash ? 1 : 2, dash, points: { show: candles.length < 3 } });
  const times = candles.map((candle) => Date.parse(candle.start) / 1000);
  // uPlot frames a lone point with years of empty time: give it one interval either side instead.
  const frame = times.length === 1 ? { range: () => [times[0] - intervalSeconds, times[0] + intervalSeconds] } : {};
  draw(element, "time", {
    scales: { x: frame },
    series: [{}, line("close", "#4f46e5"), line("high", "#15803d", [4, 4]), line("low", "#b91c1c", [4, 4])],
  }, [
    times,
    ...["close", "high", "low"].map((field) => candles.map((candle) => weiToEthNumber(candle[field]))),
  ]);
}

// A young market, too few candles to read: one point per trade (the price per key it paid), joined,
// and the next key's price now.
export function drawTradeLine(element, trades, nextKeyPrice) {
  if (!trades.length) return showEmpty(element, "No trades yet.");
  const ordered = [...trades].sort((a, b) => Date.parse(a.timestamp) - Date.parse(b.timestamp));
  const times = [...ordered.map((trade) => Date.parse(trade.timestamp) / 1000), Date.now() / 1000];
  const prices = [...ordered.map((trade) => weiToEthNumber(BigInt(trade.price) / BigInt(trade.amount))),
    weiToEthNumber(nextKeyPrice)];
  draw(element, "time", {
    series: [{}, { label: "price per key", stroke: "#4f46e5", width: 2, points: { show: true, size: 6 } }],
  }, [times, prices]);
}

const inUtc = (seconds) => uPlot.tzDate(new Date(seconds * 1000), "Etc/UTC");

// One figure per UTC day: `days` ["YYYY-MM-DD", …] and a number for each; `unit` labels the y axis.
export function drawDaily(element, days, label, values, unit) {
  const times = days.map((day) => Date.parse(`${day}T00:00:00Z`) / 1000);
  draw(element, "day (UTC)", {
    tzDate: inUtc,
    series: [{}, { label, stroke: "#4f46e5", width: 2, fill: "rgba(79, 70, 229, 0.12)", points: { show: true, size: 5 } }],
  }, [times, values], [{ label: unit }]);
}

// The autoscale history (GET /api/autoscale/history): demand and forecast in concurrent streams on the left
// axis, desired and current nodes on the right; intervalSeconds frames a lone point.
export function drawSignalHistory(element, points, intervalSeconds) {
  const times = points.map((point) => Date.parse(point.timestamp) / 1000);
  const line = (label, scale, stroke, dash) => ({ label, scale, stroke, width: 2, dash, points: { show: points.length < 3 } });
  const frame = times.length === 1 ? { range: () => [times[0] - intervalSeconds, times[0] + intervalSeconds] } : {};
  draw(element, "time", {
    // From zero, and never flat: an idle system draws its zeros on the axis, not in the middle.
    scales: { x: frame, streams: { range: (_, min, max) => [0, Math.max(max * 1.2, 1)] },
      nodes: { range: (_, min, max) => [0, Math.max(max + 1, 2)] } },
    series: [{}, line("demand (streams)", "streams", "#4f46e5"), line("forecast (streams)", "streams", "#4f46e5", [6, 4]),
      line("desired nodes", "nodes", "#dc2626"), line("current nodes", "nodes", "#15803d", [2, 3])],
  }, [times, ...["demand", "forecast", "desired", "current"].map((field) => points.map((point) => point[field]))],
  [{ label: "concurrent streams", scale: "streams" }, { label: "nodes", scale: "nodes", side: 1, grid: { show: false } }]);
}
