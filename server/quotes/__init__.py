"""Quotes: the legacy quote-server client, its simulator, and the Redis-backed quote cache."""
