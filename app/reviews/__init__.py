"""Ratings and reviews of avatars by wallets that hold their keys and chatted with them."""
