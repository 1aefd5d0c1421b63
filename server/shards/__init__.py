"""Shards: the pure trading engine and the worker process around it."""
