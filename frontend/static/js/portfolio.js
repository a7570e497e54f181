// The portfolio is rendered on the server for the signed-in wallet; render it again when that changes.
import { followSignedInWallet } from "./session.js";

followSignedInWallet(document.getElementById("portfolio").dataset.renderedFor);
