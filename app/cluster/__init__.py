"""What several backend workers agree on: which of them leads the singleton work."""
