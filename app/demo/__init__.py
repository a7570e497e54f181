"""The demo world: a first start of the embedded default opens on a living market, not an empty table."""
