"""Chain: JSON-RPC client, the embedded anvil node, contract build and deploy, the indexer."""
