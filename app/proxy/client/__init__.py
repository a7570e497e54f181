"""The backend's side of the proxy: the paying, verifying client, the trust policy and endpoint checks it
routes by, and the node directory the API shows."""
