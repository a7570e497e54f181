"""Twin market: AI avatars with keys on a bonding curve and attested, paid chat."""
