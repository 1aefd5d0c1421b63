"""The audit log: DUMPLOG XML rendering, safe atomic dump files and schema validation."""
