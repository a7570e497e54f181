// What the server rendered for the scripts (see app/web/controllers.py `page`): the chain id,
// TwinKeys' address and whether the chain is the embedded one (which offers the dev wallet).
export const config = JSON.parse(document.getElementById("wallet-config").textContent);
