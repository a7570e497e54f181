"""Keys market: bonding-curve math (mirrors TwinKeys), quotes, trades, holdings, rankings."""
