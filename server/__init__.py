"""The daytrade server: Twisted gateway, shard workers, quotes, store and audit."""
