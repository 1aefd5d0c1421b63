"""The numbers and patterns of the trading rules that the server and its clients both rely on
(COMMANDS.md, PROTOCOL.md): how long quotes and orders live, the retry window, what ids are."""

from __future__ import annotations

import re

#: A quote backs orders for 60 s after its quote time.
QUOTE_LIFETIME_MS = 60_000

#: A BUY or SELL waits this long for its COMMIT or CANCEL, then the server expires it.
PENDING_LIFETIME_MS = 60_000

#: How many of a user's latest state-changing replies the server keeps for retries with `[n]`.
RECENT_REPLIES = 16

#: A stock symbol: one to three capital ASCII letters (the pattern, for composing larger ones).
SYMBOL_MAX_LENGTH = 3
SYMBOL_PATTERN = f"[A-Z]{{1,{SYMBOL_MAX_LENGTH}}}"
SYMBOL = re.compile(SYMBOL_PATTERN)

#: A user id: one to 32 ASCII letters, digits or underscores (case-sensitive).
USER_ID_MAX_LENGTH = 32
USER_ID_PATTERN = f"[A-Za-z0-9_]{{1,{USER_ID_MAX_LENGTH}}}"
USER_ID = re.compile(USER_ID_PATTERN)

#: A password's length, in characters.
PASSWORD_MIN_LENGTH = 8
PASSWORD_MAX_LENGTH = 128
