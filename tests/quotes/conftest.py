"""Fixtures of the quote tests: the session's real Redis server, and pytest fixtures handed to
trial TestCases (which cannot take fixture arguments) as attributes."""

from __future__ import annotations

import pytest

from tests.fixtures_redis import embedded_redis, redis_url  # noqa: F401


@pytest.fixture
def trial_tmp_path(request: pytest.FixtureRequest, tmp_path) -> None:
    """`self.tmp_path` for a TestCase (trial's own mktemp writes below the working directory)."""
    request.instance.tmp_path = tmp_path


@pytest.fixture
def trial_redis(request: pytest.FixtureRequest, embedded_redis) -> None:  # noqa: F811
    """`self.redis_server`: the session's EmbeddedRedis, for a TestCase. Do not stop it."""
    request.instance.redis_server = embedded_redis
