"""Read models across domains: the avatar profile, the rankings, the creator dashboard. It depends on the
domains (market, avatars, chat) and none of them on it; the API and the pages both read through it."""
