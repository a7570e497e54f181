// The avatar page's review form: the wallet signs the review as EIP-712 typed data (the domain and types
// come from /api/reviews/eip712, the same the server verifies with), then it is posted; the page reloads
// to show it. Only holders who chatted with the avatar are accepted: the server says why otherwise.
import { keccak256, toUtf8Bytes } from "ethers";
import { api } from "./api.js";
import { showStatus } from "./dom.js";
import { onWalletChange, wallet } from "./wallet.js";

const form = document.getElementById("review-form");
const fields = document.getElementById("review-fields");
const status = document.getElementById("review-status");

if (form) {
  onWalletChange((current) => { fields.disabled = current.state !== "connected"; });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = form.elements.text.value;
    const rating = Number(form.elements.rating.value);
    try {
      showStatus(status, "pending", "Sign the review in your wallet…");
      const { domain, types } = await api("/api/reviews/eip712");
      const time = Math.floor(Date.now() / 1000);
      const message = { avatarId: form.dataset.avatarId, rating, textHash: keccak256(toUtf8Bytes(text)), time };
      const signature = await wallet.signer.signTypedData(domain, { Review: types.Review }, message);
      await api(`/api/avatars/${form.dataset.avatarId}/reviews`, { method: "POST", body: { rating, text, time, signature } });
      showStatus(status, "done", "Review saved.");
      window.location.reload();
    } catch (error) {
      showStatus(status, "failed", `Not saved: ${error.detail ?? error.message}`, error.code ?? "");
    }
  });
}
