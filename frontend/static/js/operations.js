// The operations page: the autoscale signal (GET /api/autoscale/signal) and its history
// (GET /api/autoscale/history), refreshed every tick of the autoscaler. The nodes are rendered on the server.
import { api } from "./api.js";
import { drawSignalHistory, showEmpty } from "./charts.js";
import { el, showStatus } from "./dom.js";
import { formatEth } from "./format.js";

const REFRESH_S = 5; // when the autoscaler ticks in another process (its interval_s here is 0)
const NO_SIGNAL = "No signal yet: the autoscaler has not made a decision to chart.";

const chart = document.getElementById("signal-chart");
const status = document.getElementById("signal-status");
const seconds = (value) => (value === null || value === undefined ? "—" : `${value.toFixed(2)} s`);

function showSignal(signal) {
  const figures = {
    ...signal,
    forecast_streams: signal.forecast_streams.toFixed(1),
    earnings_current: formatEth(signal.expected_earnings_wei_per_node_hour.current, "OPG"),
    earnings_forecast: formatEth(signal.expected_earnings_wei_per_node_hour.forecast, "OPG"),
  };
  for (const cell of document.querySelectorAll("[data-signal]")) cell.textContent = figures[cell.dataset.signal];
  document.getElementById("signal-reason").textContent =
    `Decided ${new Date(signal.decided_at).toLocaleTimeString()}: ${signal.reason}`;
  const rows = signal.models.map((model) => el("tr", {},
    el("th", { scope: "row" }, model.model),
    ...[model.desired_nodes, model.demand_streams, model.forecast_streams.toFixed(1), model.queue_depth, model.in_flight,
      model.arrivals_per_s.toFixed(2), seconds(model.ttft_s.p95)].map((value) => el("td", { className: "num" }, String(value)))));
  document.getElementById("signal-models").replaceChildren(
    ...(rows.length ? rows : [el("tr", {}, el("td", { colSpan: 8, className: "empty" }, "No model has demand yet."))]));
}

async function refresh() {
  let intervalS = REFRESH_S;
  try {
    const [signal, history] = await Promise.all([api("/api/autoscale/signal"), api("/api/autoscale/history")]);
    intervalS = history.interval_s || REFRESH_S;
    showSignal(signal);
    if (history.points.length) drawSignalHistory(chart, history.points, intervalS);
    else showEmpty(chart, NO_SIGNAL);
    showStatus(status, "", "");
  } catch (error) {
    showEmpty(chart, NO_SIGNAL);
    if (error.status !== 404) showStatus(status, "failed", `The signal did not load: ${error.message}`, error.code ?? "error");
  }
  setTimeout(refresh, intervalS * 1000);
}

refresh();
