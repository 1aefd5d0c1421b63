"""The daytrade wire protocol: request parsing, typed commands, replies and error codes (no I/O)."""
