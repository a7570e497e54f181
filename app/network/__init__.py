"""The network's usage in the open: rollups kept as events arrive, and the figures read from them."""
