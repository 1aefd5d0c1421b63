"""Persistence: the store port and its SQLite (embedded default) and MongoDB adapters."""
