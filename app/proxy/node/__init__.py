"""The LLM proxy node: its own Litestar app (``app``, ``routes``), completions through upstream adapters,
x402 payments, and the enclave key that signs every reply."""
