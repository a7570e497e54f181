"""What an avatar remembers about each fan: extracted facts, recalled by relevance × strength, forgotten when stale."""
