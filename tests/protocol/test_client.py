"""DaytradeClient against small asyncio line servers on 127.0.0.1: matching, timeouts, events."""

from __future__ import annotations

import asyncio
import gc
import json
import random
import re
import ssl
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from protocol.client import ConnectionLost, DaytradeClient, RequestTimeout
from protocol.errors import ErrorCode
from protocol.replies import PushedEvent, Reply
from tests.support.certs import self_signed_certificate

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
Serve = Callable[[Handler], Awaitable[int]]

_REQUEST = re.compile(r"(?:\[(\d+)\] )?([^,]*)(?:,(.*))?")


def parse(line: bytes) -> tuple[int | None, str, str | None]:
    """A request line as (txn, command, rest of the line)."""
    m = _REQUEST.fullmatch(line.decode().rstrip("\n"))
    assert m is not None, line
    txn, cmd, rest = m.groups()
    return (int(txn) if txn else None), cmd, rest


def reply(txn: int | None, cmd: str, **result: Any) -> bytes:
    return json.dumps({"txn": txn, "cmd": cmd, "ok": True, "result": result}).encode() + b"\n"


def echo(line: bytes, txn: int | None = _REQUEST) -> bytes:  # type: ignore[assignment]
    """The reply that echoes `line`, with the line's own txn unless `txn` is given."""
    own_txn, cmd, rest = parse(line)
    return reply(own_txn if txn is _REQUEST else txn, cmd, rest=rest)


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Start a line server on a free 127.0.0.1 port with a per-connection handler."""
    servers: list[asyncio.Server] = []
    tasks: set[asyncio.Task[None]] = set()

    async def start(handler: Handler) -> int:
        async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            tasks.add(asyncio.current_task())  # type: ignore[arg-type]
            try:
                await handler(reader, writer)
            except (ConnectionError, asyncio.IncompleteReadError):
                pass
            finally:
                writer.close()

        server = await asyncio.start_server(run, "127.0.0.1", 0)
        servers.append(server)
        return server.sockets[0].getsockname()[1]

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def echo_handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while line := await reader.readline():
        writer.write(echo(line))
        await writer.drain()


async def connect(port: int, **kwargs: Any) -> DaytradeClient:
    return await DaytradeClient.connect("127.0.0.1", port, **kwargs)


# --- matching --------------------------------------------------------------------------------


async def test_a_request_gets_its_reply(serve: Serve) -> None:
    async with await connect(await serve(echo_handler)) as client:
        answer = await client.send("QUOTE,alice,ABC", txn=5)
    assert answer == Reply(5, "QUOTE", True, {"rest": "alice,ABC"})


async def test_pipelined_replies_out_of_order_are_matched_by_txn(serve: Serve) -> None:
    async def shuffling(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        lines = [await reader.readline() for _ in range(1000)]
        random.Random(7).shuffle(lines)
        for line in lines:
            writer.write(echo(line))
        await writer.drain()
        await reader.read()

    async with await connect(await serve(shuffling)) as client:
        futures = [client.send(f"ADD,user{i},{i}.00", txn=i) for i in range(1, 1001)]
        assert client.in_flight == 1000
        replies = await asyncio.gather(*futures)
    assert [(r.txn, r.result) for r in replies] == [
        (i, {"rest": f"user{i},{i}.00"}) for i in range(1, 1001)]


async def test_txn_less_requests_are_answered_first_in_first_out(serve: Serve) -> None:
    async def null_txn(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            writer.write(echo(line, txn=None))

    async with await connect(await serve(null_txn)) as client:
        replies = await asyncio.gather(*(client.send(f"PING,{i}") for i in range(200)))
    assert [r.result for r in replies] == [{"rest": str(i)} for i in range(200)]


async def test_a_server_assigned_txn_answers_the_oldest_txn_less_request(serve: Serve) -> None:
    async def assigning(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assigned = 1000
        while line := await reader.readline():
            assigned += 1
            writer.write(echo(line, txn=assigned))

    async with await connect(await serve(assigning)) as client:
        first, second = await asyncio.gather(client.send("QUOTE,a,X"), client.send("QUOTE,b,Y"))
    assert (first.txn, first.result) == (1001, {"rest": "a,X"})
    assert (second.txn, second.result) == (1002, {"rest": "b,Y"})


async def test_txn_and_txn_less_requests_mix_on_one_connection(serve: Serve) -> None:
    async def mixed(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        lines = [await reader.readline() for _ in range(6)]
        for line in reversed(lines):  # txn'd replies out of order, txn-less ones reversed too
            writer.write(echo(line))
        for line in lines:
            if parse(line)[0] is None:
                writer.write(echo(line))
        await reader.read()

    # The reversed txn-less replies arrive first: FIFO pairs them oldest-first regardless.
    async with await connect(await serve(mixed)) as client:
        futures = [client.send("A,1", txn=1), client.send("B"), client.send("C,3", txn=3),
                   client.send("D"), client.send("E,5", txn=5), client.send("F")]
        replies = await asyncio.gather(*futures)
    assert [r.cmd for i, r in enumerate(replies) if i % 2 == 0] == ["A", "C", "E"]
    assert [r.cmd for i, r in enumerate(replies) if i % 2 == 1] == ["F", "D", "B"]


async def test_an_error_reply_resolves_the_request(serve: Serve) -> None:
    async def refusing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            txn, cmd, _ = parse(line)
            writer.write(json.dumps({"txn": txn, "cmd": cmd, "ok": False, "error": {
                "code": "no_pending_buy", "message": "nothing pending"}}).encode() + b"\n")

    async with await connect(await serve(refusing)) as client:
        answer = await client.request("COMMIT_BUY", "alice", txn=9)
    assert (answer.ok, answer.code, answer.message) == (False, ErrorCode.NO_PENDING_BUY,
                                                        "nothing pending")


async def test_replies_split_across_reads_and_packed_together_are_reassembled(
        serve: Serve) -> None:
    async def dribbling(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        lines = [await reader.readline() for _ in range(3)]
        data = b"".join(echo(line) for line in lines)
        for i in range(0, len(data), 7):
            writer.write(data[i:i + 7])
            await writer.drain()
            await asyncio.sleep(0)
        await reader.read()

    async with await connect(await serve(dribbling)) as client:
        replies = await asyncio.gather(*(client.send(f"X,{i}", txn=i) for i in (1, 2, 3)))
    assert [r.result for r in replies] == [{"rest": "1"}, {"rest": "2"}, {"rest": "3"}]


async def test_a_multi_megabyte_reply_arrives_whole(serve: Serve) -> None:
    xml = "<log>" + "x" * (5 * 1024 * 1024) + "</log>"

    async def dumping(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line = await reader.readline()
        writer.write(reply(parse(line)[0], "DUMPLOG", xml=xml, events=0))
        await writer.drain()
        await reader.read()

    async with await connect(await serve(dumping)) as client:
        answer = await client.request("DUMPLOG", "alice", "-", txn=3)
    assert answer.result == {"xml": xml, "events": 0}


async def test_a_garbage_line_from_the_server_is_dropped_and_counted(serve: Serve) -> None:
    async def noisy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line = await reader.readline()
        writer.write(b"this is not json\n" + echo(line))
        await reader.read()

    async with await connect(await serve(noisy)) as client:
        answer = await client.send("PING")
        assert answer.cmd == "PING"
        assert client.decode_errors == 1


# --- what goes on the wire -------------------------------------------------------------------


async def recorded_lines(serve: Serve, send: Callable[[DaytradeClient], Awaitable[object]]
                         ) -> list[bytes]:
    seen: list[bytes] = []

    async def recording(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            seen.append(line)
            writer.write(echo(line))

    async with await connect(await serve(recording)) as client:
        await send(client)
    return seen


async def test_request_formats_the_txn_and_arguments(serve: Serve) -> None:
    async def send(client: DaytradeClient) -> None:
        await client.request("BUY", "alice", "ABC", "100.00", txn=7)
        await client.request("DISPLAY_SUMMARY", "alice")
        await client.request("PING")
        await client.request("SET_BUY_AMOUNT", "bob", "XY", 12)

    assert await recorded_lines(serve, send) == [
        b"[7] BUY,alice,ABC,100.00\n", b"DISPLAY_SUMMARY,alice\n", b"PING\n",
        b"SET_BUY_AMOUNT,bob,XY,12\n"]


async def test_session_helpers_send_their_commands(serve: Serve) -> None:
    async def send(client: DaytradeClient) -> None:
        assert (await client.auth("s3cret-token")).cmd == "AUTH"
        assert (await client.login("alice", " pass, word ")).cmd == "LOGIN"
        assert (await client.ping()).cmd == "PING"

    assert await recorded_lines(serve, send) == [
        b"AUTH,s3cret-token\n", b"LOGIN,alice, pass, word \n", b"PING\n"]


async def test_requests_sent_in_one_turn_go_out_in_order(serve: Serve) -> None:
    async def send(client: DaytradeClient) -> None:
        await asyncio.gather(*(client.send(f"X,{i}", txn=i + 1) for i in range(500)))

    assert await recorded_lines(serve, send) == [f"[{i + 1}] X,{i}\n".encode() for i in range(500)]


async def test_a_line_with_a_newline_is_refused(serve: Serve) -> None:
    async with await connect(await serve(echo_handler)) as client:
        with pytest.raises(ValueError):
            client.send("PING\nADD,mallory,1000000.00")
        assert client.in_flight == 0


async def test_a_txn_already_in_flight_is_refused(serve: Serve) -> None:
    async with await connect(await serve(echo_handler)) as client:
        first = client.send("PING", txn=4)
        with pytest.raises(ValueError):
            client.send("PING", txn=4)
        assert (await first).txn == 4


async def test_quit_returns_the_reply_once_the_server_has_closed(serve: Serve) -> None:
    async def quitting(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line = await reader.readline()
        writer.write(echo(line))
        await writer.drain()

    client = await connect(await serve(quitting))
    assert (await client.quit()).cmd == "QUIT"
    assert client.closed


# --- timeouts --------------------------------------------------------------------------------


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read()


async def test_a_request_without_a_reply_times_out(serve: Serve) -> None:
    async with await connect(await serve(silent), timeout=0.2) as client:
        with pytest.raises(RequestTimeout):
            await client.send("QUOTE,alice,ABC", txn=1)
        with pytest.raises(asyncio.TimeoutError):
            await client.send("QUOTE,alice,ABC")


async def test_a_per_request_timeout_overrides_the_clients(serve: Serve) -> None:
    async with await connect(await serve(silent), timeout=None) as client:
        with pytest.raises(RequestTimeout):
            await client.send("PING", timeout=0.1)
        forever = client.send("PING", timeout=None)
        await asyncio.sleep(0.3)
        assert not forever.done()


async def delayed_first(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answers the first request late (after the second has arrived), then the rest at once."""
    first = await reader.readline()
    second = await reader.readline()
    writer.write(echo(first) + echo(second))
    while line := await reader.readline():
        writer.write(echo(line))


async def test_a_late_reply_to_a_timed_out_txn_request_is_dropped(serve: Serve) -> None:
    async with await connect(await serve(delayed_first)) as client:
        with pytest.raises(RequestTimeout):
            await client.send("SLOW", txn=1, timeout=0.1)
        answer = await client.send("FAST", txn=2)
        assert (answer.txn, answer.cmd) == (2, "FAST")
        assert (await client.send("NEXT")).cmd == "NEXT"
        assert client.late_replies == 1
        assert client.unmatched_replies == 0


async def test_a_late_reply_to_a_timed_out_txn_less_request_is_not_given_to_the_next(
        serve: Serve) -> None:
    async with await connect(await serve(delayed_first)) as client:
        with pytest.raises(RequestTimeout):
            await client.send("SLOW", timeout=0.1)
        assert (await client.send("FAST")).cmd == "FAST"
        assert client.late_replies == 1


async def test_a_retry_with_the_same_txn_after_a_timeout_gets_its_own_reply(
        serve: Serve) -> None:
    async def counting(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        first = await reader.readline()
        retry = await reader.readline()
        writer.write(reply(parse(first)[0], "BUY", attempt=1))
        writer.write(reply(parse(retry)[0], "BUY", attempt=2))
        await reader.read()

    async with await connect(await serve(counting)) as client:
        with pytest.raises(RequestTimeout):
            await client.send("BUY,alice,ABC,10.00", txn=8, timeout=0.1)
        answer = await client.send("BUY,alice,ABC,10.00", txn=8)
    assert answer.result == {"attempt": 2}


async def test_a_cancelled_request_leaves_its_reply_to_be_dropped(serve: Serve) -> None:
    async with await connect(await serve(delayed_first)) as client:
        slow = client.send("SLOW", txn=3)
        await asyncio.sleep(0.05)
        slow.cancel()
        answer = await client.send("AGAIN", txn=3)
        assert answer.cmd == "AGAIN"
        assert client.late_replies == 1


# --- pushed events ---------------------------------------------------------------------------


def pushing(*events: dict[str, Any]) -> Handler:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line = await reader.readline()
        for event in events:
            writer.write(json.dumps(event).encode() + b"\n")
        writer.write(echo(line))
        await reader.read()

    return handler


FIRED = {"event": "trigger_fired", "user": "alice", "symbol": "ABC", "shares": 3,
         "price": "10.00", "cash": "970.00"}
EXPIRED = {"event": "pending_expired", "user": "alice", "symbol": "ABC", "shares": 1,
           "price": "10.00", "cash": "1000.00"}


async def test_pushed_events_reach_the_callback(serve: Serve) -> None:
    seen: list[PushedEvent] = []
    async with await connect(await serve(pushing(FIRED, EXPIRED)), on_event=seen.append) as client:
        assert (await client.send("PING", txn=1)).cmd == "PING"
    assert [e.event for e in seen] == ["trigger_fired", "pending_expired"]
    assert seen[0].data == {k: v for k, v in FIRED.items() if k != "event"}


async def test_pushed_events_reach_the_queue_without_a_callback(serve: Serve) -> None:
    async with await connect(await serve(pushing(FIRED))) as client:
        ping = client.send("PING")
        event = await asyncio.wait_for(client.events.get(), 5)
        assert event == PushedEvent("trigger_fired", {k: v for k, v in FIRED.items()
                                                      if k != "event"})
        assert (await ping).cmd == "PING"


async def test_a_full_event_queue_drops_the_oldest(serve: Serve) -> None:
    events = [dict(FIRED, shares=i) for i in range(5)]
    async with await connect(await serve(pushing(*events)), events_maxsize=2) as client:
        await client.send("PING")
        kept = [client.events.get_nowait().data["shares"] for _ in range(client.events.qsize())]
        assert kept == [3, 4]
        assert client.dropped_events == 3


async def test_a_failing_callback_does_not_stop_the_replies(serve: Serve) -> None:
    def broken(event: PushedEvent) -> None:
        raise RuntimeError("dashboard bug")

    async with await connect(await serve(pushing(FIRED)), on_event=broken) as client:
        assert (await client.send("PING")).cmd == "PING"


# --- closing ---------------------------------------------------------------------------------


async def test_the_server_closing_fails_outstanding_requests_with_connection_lost(
        serve: Serve) -> None:
    async def hanging_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.write(b'{"txn":1,"cmd":"A","ok":true,"result":{}}\n{"txn":2,"cm')

    client = await connect(await serve(hanging_up))
    futures = [client.send("A", txn=1), client.send("B", txn=2), client.send("C")]
    assert (await futures[0]).cmd == "A"
    for fut in futures[1:]:
        with pytest.raises(ConnectionLost):
            await fut
    await asyncio.wait_for(client.wait_closed(), 5)
    assert client.closed
    with pytest.raises(ConnectionLost):
        client.send("PING")
    await client.close()


async def test_close_fails_outstanding_requests_and_closes_the_socket(serve: Serve) -> None:
    server_saw_eof = asyncio.Event()

    async def watching(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        server_saw_eof.set()

    client = await connect(await serve(watching))
    pending = [client.send("QUOTE,alice,ABC", txn=1), client.send("PING")]
    await client.close()
    for fut in pending:
        with pytest.raises(ConnectionLost):
            await fut
    await asyncio.wait_for(server_saw_eof.wait(), 5)
    assert client.closed and client.in_flight == 0
    await client.close()  # closing twice is harmless


async def test_a_closed_client_leaves_nothing_scheduled_that_keeps_it_alive(
        serve: Serve) -> None:
    client = await connect(await serve(echo_handler), timeout=0.5)
    await client.ping()
    await client.close()
    ref = weakref.ref(client)
    del client
    await asyncio.sleep(0)
    gc.collect()
    assert ref() is None


async def test_connecting_to_a_closed_port_fails() -> None:
    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    with pytest.raises(OSError):
        await connect(port)


# --- flow control ----------------------------------------------------------------------------


async def test_drain_waits_while_the_server_is_not_reading(serve: Serve) -> None:
    may_read = asyncio.Event()

    async def slow_reader(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await may_read.wait()
        while line := await reader.readline():
            writer.write(echo(line))

    async with await connect(await serve(slow_reader), timeout=None) as client:
        payload = "x" * 1000
        futures = [client.send(f"X,{payload}", txn=i) for i in range(1, 20_001)]  # ~20 MB
        draining = asyncio.ensure_future(client.drain())
        await asyncio.sleep(0.3)
        assert not draining.done()
        may_read.set()
        await asyncio.wait_for(draining, 30)
        replies = await asyncio.wait_for(asyncio.gather(*futures), 30)
    assert [r.txn for r in replies] == list(range(1, 20_001))


# --- TLS -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A throwaway self-signed certificate for 127.0.0.1."""
    return self_signed_certificate(tmp_path_factory.mktemp("tls"))


async def test_requests_work_over_tls(tls_cert: tuple[Path, Path]) -> None:
    cert, key = tls_cert
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    server = await asyncio.start_server(echo_handler, "127.0.0.1", 0, ssl=server_ctx)
    try:
        port = server.sockets[0].getsockname()[1]
        client_ctx = ssl.create_default_context(cafile=str(cert))
        async with await connect(port, ssl=client_ctx) as client:
            assert (await client.send("PING", txn=1)).txn == 1
    finally:
        server.close()
        await server.wait_closed()


async def test_tls_refuses_an_untrusted_server(tls_cert: tuple[Path, Path]) -> None:
    cert, key = tls_cert
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    server = await asyncio.start_server(silent, "127.0.0.1", 0, ssl=server_ctx)
    try:
        port = server.sockets[0].getsockname()[1]
        with pytest.raises(ssl.SSLError):
            await connect(port, ssl=ssl.create_default_context())
    finally:
        server.close()
        await server.wait_closed()
