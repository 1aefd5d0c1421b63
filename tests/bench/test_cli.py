"""`daytrade bench` options and its exits for bad usage."""

import socket
import sys

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
    out = " ".join(capsys.readouterr().out.split())
    assert "no workload file 'nope.txt' here" in out and "10user.txt" in out


def test_an_unreadable_compare_file_exits_2(tmp_path):
    assert main(["1user.txt", "--compare", str(tmp_path / "old.json"), "--no-progress"]) == 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _token(tmp_path):
    token = tmp_path / "token"
    token.write_text("t")
    return str(token)


def test_no_server_listening_exits_1_and_says_what_to_do(tmp_path, capsys):
    port = _free_port()
    assert main(["1user.txt", "--port", str(port), "--token-file", _token(tmp_path),
                 "--no-progress"]) == 1
    out = " ".join(capsys.readouterr().out.split())
    assert f"no daytrade server at 127.0.0.1:{port}; start one with `daytrade up` or use " \
           f"--embedded" in out
    assert "Errno" not in out and "Error" not in out


def test_a_missing_token_file_names_the_flag(tmp_path, capsys):
    missing = tmp_path / "data" / "operator.token"
    assert main(["1user.txt", "--port", str(_free_port()), "--token-file", str(missing),
                 "--no-progress"]) == 2
    out = " ".join(capsys.readouterr().out.split())
    assert f"no operator token at {missing}" in out
    assert "--token-file" in out and "--embedded" in out
    assert "Errno" not in out


def test_the_default_token_file_missing_names_the_flag(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["1user.txt", "--port", str(_free_port()), "--no-progress"]) == 2
    out = " ".join(capsys.readouterr().out.split())
    assert "no operator token at daytrade-data/operator.token: pass --token-file" in out


def test_plot_without_matplotlib_exits_2_before_the_replay(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    # No server at this port: a replay would say so; the check must come first.
    code = main(["1user.txt", "--port", str(_free_port()), "--token-file", _token(tmp_path),
                 "--plot", str(tmp_path / "run.png"), "--no-progress"])
    out = " ".join(capsys.readouterr().out.split())
    assert code == 2
    assert "pip install 'daytrade[plot]'" in out
    assert "no daytrade server" not in out


@pytest.mark.parametrize("flag", ["--json", "--plot"])
def test_an_output_file_in_a_missing_directory_exits_2_before_the_replay(tmp_path, capsys,
                                                                         flag):
    pytest.importorskip("matplotlib", exc_type=ImportError) if flag == "--plot" else None
    code = main(["1user.txt", "--port", str(_free_port()), "--token-file", _token(tmp_path),
                 flag, str(tmp_path / "nowhere" / "out"), "--no-progress"])
    out = " ".join(capsys.readouterr().out.split())
    assert code == 2
    assert f"{flag} " in out and "no directory" in out
