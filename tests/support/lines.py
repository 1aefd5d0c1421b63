"""A plain blocking line client for tests that need to send raw bytes (bad UTF-8, long lines)."""

from __future__ import annotations

import json
import socket
import time
from typing import Any


class LineClient:
    """Send raw request bytes, read JSON reply lines."""

    def __init__(self, host: str, port: int, timeout: float = 20.0,
                 source_host: str | None = None) -> None:
        """`source_host`: connect from this local address (e.g. 127.0.0.2, another client)."""
        source = None if source_host is None else (source_host, 0)
        self.sock = socket.create_connection((host, port), timeout=timeout,
                                             source_address=source)
        self._buf = b""

    def send(self, data: bytes | str) -> None:
        if isinstance(data, str):
            data = data.encode()
        if not data.endswith(b"\n"):
            data += b"\n"
        self.sock.sendall(data)

    def reply(self) -> dict[str, Any]:
        while b"\n" not in self._buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed by the server")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return json.loads(line)

    def ask(self, data: bytes | str) -> dict[str, Any]:
        self.send(data)
        return self.reply()

    def closed_by_server(self, within: float = 10.0) -> bool:
        deadline = time.monotonic() + within
        self.sock.settimeout(0.2)
        while time.monotonic() < deadline:
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return True
            if not chunk:
                return True
            self._buf += chunk
        return False

    def end_input(self) -> None:
        """Half-close: the server sees end of input, this side can still read (`nc -N`)."""
        self.sock.shutdown(socket.SHUT_WR)

    def replies_until_closed(self) -> list[dict[str, Any]]:
        """Every reply line the server sends before it closes the connection."""
        while True:
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            self._buf += chunk
        lines, self._buf = self._buf.split(b"\n"), b""
        return [json.loads(line) for line in lines if line.strip()]

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> LineClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
