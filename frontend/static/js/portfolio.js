// The portfolio is rendered on the server for the signed-in wallet (its P&L counts the network fees its
// trades paid, recorded by the indexer from their receipts); render it again when that wallet changes, and
// its figures again whenever a trade moves the price of a key it holds or the wallet itself trades.
import { concernsPage, followLiveRegions } from "./live.js";
import { followSignedInWallet } from "./session.js";

const root = document.getElementById("portfolio");
const viewer = root.dataset.renderedFor;
followSignedInWallet(viewer);
if (viewer) followLiveRegions((event) => concernsPage(event, viewer));
