"""Fixtures of the quote tests: the session's real Redis server."""

from tests.fixtures_redis import embedded_redis, redis_url  # noqa: F401
