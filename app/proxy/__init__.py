"""The LLM proxy node (its own Litestar app) and the backend's client for it."""
