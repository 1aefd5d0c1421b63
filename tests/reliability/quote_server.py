"""A legacy quote server on 127.0.0.1 whose behaviour the test switches while the system runs.

Modes: `ok` (a valid reply at the symbol's fixed price), `slow:<s>` (the valid reply after s
seconds), `silent` (reads the request, never answers), `close_mid_line` (half a reply, then
close), `wrong_symbol`, `nan`, `negative`, `extra_fields` (a sixth field). One thread per
connection; `close()` ends them all.
"""

from __future__ import annotations

import socket
import threading
import time

from tests.server.conftest import fixed_price


def quote_line(symbol: str, user: str) -> str:
    cents = fixed_price(symbol)
    return f"{cents // 100}.{cents % 100:02d},{symbol},{user},{int(time.time() * 1000)},k{symbol}"


class SwitchableQuoteServer:
    """The quote server of the dependency battery; `mode` may change at any time."""

    def __init__(self, mode: str = "ok") -> None:
        self.mode = mode
        self.requests = 0
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(256)
        self.port = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        self._sock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except (TimeoutError, OSError):
                continue
            with self._lock:
                self._conns.add(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(10)
            data = b""
            while b"\n" not in data:
                chunk = conn.recv(256)
                if not chunk:
                    return
                data += chunk
            self.requests += 1
            symbol, _, user = data.split(b"\n")[0].decode(errors="replace").strip().partition(",")
            mode = self.mode
            good = quote_line(symbol, user)
            if mode == "ok":
                conn.sendall(good.encode() + b"\n")
            elif mode.startswith("slow:"):
                if self._stop.wait(float(mode.split(":")[1])):
                    return
                conn.sendall(quote_line(symbol, user).encode() + b"\n")
            elif mode == "silent":
                self._stop.wait(30)
            elif mode == "close_mid_line":
                conn.sendall(good[: len(good) // 2].encode())
            elif mode == "wrong_symbol":
                conn.sendall(good.replace(f",{symbol},", ",ZZZ,", 1).encode() + b"\n")
            elif mode == "nan":
                conn.sendall(b"NaN" + good[good.index(","):].encode() + b"\n")
            elif mode == "negative":
                conn.sendall(b"-" + good.encode() + b"\n")
            elif mode == "extra_fields":
                conn.sendall(good.encode() + b",extra\n")
            else:
                raise ValueError(f"unknown mode {mode!r}")
        except OSError:
            pass
        finally:
            with self._lock:
                self._conns.discard(conn)
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        with self._lock:
            for conn in list(self._conns):
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        self._sock.close()
