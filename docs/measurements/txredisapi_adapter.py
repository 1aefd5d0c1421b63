"""TwistedRedis's interface over txredisapi: what the bench ran side by side with TwistedRedis.

To run it: in a copy of the tree, make QuoteCache build its client from a URL with
`TxRedis.from_url(redis, reactor=reactor)` (this file copied to server/quotes/), txredisapi
installed. It adds nothing to the library: no deadline beyond txredisapi's reply timeout, and no
prompt failure while Redis is down (see server/quotes/redis_client.py for what came of that).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

import txredisapi
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from server.quotes.redis_client import RedisReplyError, RedisUnavailable, Script


class TxRedis:
    """The calls QuoteCache makes (from_url, execute, run_script, close) on a txredisapi
    lazyConnection."""

    def __init__(self, host: str, port: int, *, db: int = 0, password: str | None = None,
                 timeout: float = 0.25, reactor: Any = None) -> None:
        # `reactor` is accepted and unused: txredisapi always uses the global reactor.
        self.timeout = timeout
        self._conn = txredisapi.lazyConnection(host, port, dbid=db or None, reconnect=True,
                                               charset=None, convertNumbers=False,
                                               password=password, replyTimeout=timeout,
                                               connectTimeout=timeout)

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> TxRedis:
        parts = urlsplit(url)
        path = parts.path.lstrip("/")
        return cls(parts.hostname or "127.0.0.1", parts.port or 6379,
                   db=int(path) if path else 0,
                   password=unquote(parts.password) if parts.password else None, **kwargs)

    @property
    def connected(self) -> bool:
        return bool(self._conn._factory.size)

    def execute(self, *args: Any) -> Deferred[Any]:
        return self._conn.execute_command(*args).addErrback(_mapped)

    def run_script(self, script: Script, keys: list[str], args: list[Any]) -> Deferred[Any]:
        d = self.execute("EVALSHA", script.sha, len(keys), *keys, *args)

        def load_if_missing(failure: Failure) -> Any:
            if failure.check(RedisReplyError) and str(failure.value).startswith("NOSCRIPT"):
                return self.execute("EVAL", script.body, len(keys), *keys, *args)
            return failure

        return d.addErrback(load_if_missing)

    def close(self) -> Deferred[None]:
        return self._conn.disconnect()


def _mapped(failure: Failure) -> Failure:
    if failure.check(txredisapi.ResponseError):
        raise RedisReplyError(str(failure.value))
    if failure.check(txredisapi.ConnectionError, txredisapi.TimeoutError):
        raise RedisUnavailable(str(failure.value))
    return failure
