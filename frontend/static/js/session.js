// Pages the server renders for the signed-in wallet (chat, portfolio, dashboard) render again when the
// wallet in the header signs in, signs out or changes, so what they show always belongs to it.
import { onWalletChange } from "./wallet.js";

// renderedFor: the address the server rendered the page for ("" when nobody was signed in).
export function followSignedInWallet(renderedFor) {
  let wasConnected = false;
  onWalletChange((wallet) => {
    const signedInAsAnother = wallet.state === "connected" && wallet.address !== renderedFor;
    const signedOut = wallet.state === "disconnected" && wasConnected;
    if (signedInAsAnother || signedOut) location.reload();
    wasConnected = wallet.state === "connected";
  });
}
