"""`daytrade bench` options and its exits for bad usage."""

import pytest

from bench.cli import main, options_from, parser


def test_defaults_replay_closed_loop_against_a_local_server():
    options = options_from(parser().parse_args(["10user.txt"]))
    assert (options.host, options.port, options.embedded) == ("127.0.0.1", 4000, False)
    assert options.token_file == "daytrade-data/operator.token"
    assert options.replay.rate is None
    assert options.replay.in_flight == 0


def test_embedded_needs_no_token_file():
    options = options_from(parser().parse_args(["1user.txt", "--embedded", "--shards", "3",
                                                "--quote-latency", "fixed:5"]))
    assert options.embedded and options.token_file is None
    assert (options.shards, options.quote_latency) == (3, "fixed:5")


def test_load_options_reach_the_replay_settings():
    options = options_from(parser().parse_args(["w", "--connections", "8", "--in-flight", "16",
                                                "--rate", "5000", "--timeout", "9"]))
    replay = options.replay
    assert (replay.connections, replay.in_flight, replay.rate, replay.timeout) == (8, 16,
                                                                                  5000.0, 9.0)


@pytest.mark.parametrize("bad", [["--quote-latency", "slow"], ["--quote-latency", "fixed:x"],
                                 ["--rate", "0"], ["--connections", "-1"]])
def test_bad_options_are_refused(bad, capsys):
    with pytest.raises(SystemExit) as exc:
        parser().parse_args(["w", *bad])
    assert exc.value.code == 2


def test_an_unknown_workload_exits_2(tmp_path, capsys):
    assert main([str(tmp_path / "nope.txt"), "--embedded", "--no-progress"]) == 2


def test_an_unreadable_compare_file_exits_2(tmp_path):
    assert main(["1user.txt", "--compare", str(tmp_path / "old.json"), "--no-progress"]) == 2


def test_no_server_listening_exits_1(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = tmp_path / "token"
    token.write_text("t")
    assert main(["1user.txt", "--port", str(port), "--token-file", str(token),
                 "--no-progress"]) == 1
