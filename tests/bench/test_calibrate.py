"""The calibration server: every line answered at once with a short JSON reply."""

import json

from bench.calibrate import CalibrationServer, reply_line
from protocol.client import DaytradeClient
from protocol.replies import decode


def test_reply_carries_the_txn_and_command_name():
    assert json.loads(reply_line(b"[12] buy,alice,ABC,1.00")) == {
        "txn": 12, "cmd": "BUY", "ok": True, "result": {}}


def test_reply_to_a_line_without_txn_has_none():
    assert json.loads(reply_line(b"AUTH,token\r"))["txn"] is None
    assert json.loads(reply_line(b"$ QUOTE,alice,ABC"))["cmd"] == "QUOTE"


def test_reply_is_one_line_the_client_decodes():
    line = reply_line(b"[3] ADD,alice,1.00")
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert decode(line.decode()).ok


async def test_the_server_answers_a_pipelined_client(tmp_path):
    with CalibrationServer(tmp_path) as server:
        client = await DaytradeClient.connect(server.host, server.port, timeout=10)
        try:
            replies = [client.send(f"ADD,u{i},1.00", txn=i + 1) for i in range(100)]
            answered = [await fut for fut in replies]
        finally:
            await client.close()
    assert [r.txn for r in answered] == list(range(1, 101))
    assert all(r.ok and r.cmd == "ADD" for r in answered)


def test_stop_ends_the_process(tmp_path):
    server = CalibrationServer(tmp_path).start()
    server.stop()
    assert server.process.poll() is not None
