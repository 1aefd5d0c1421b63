"""Typed commands: immutable, canonical `line()` without the txn, and the trading/state flags."""

import dataclasses

import pytest

from protocol import commands as c

DOLLARS = 12_345  # cents, written 123.45


@pytest.mark.parametrize(("cmd", "line"), [
    (c.Add("u1", DOLLARS), "ADD,u1,123.45"),
    (c.Quote("u1", "ABC"), "QUOTE,u1,ABC"),
    (c.Buy("u1", "ABC", DOLLARS), "BUY,u1,ABC,123.45"),
    (c.CommitBuy("u1"), "COMMIT_BUY,u1"),
    (c.CancelBuy("u1"), "CANCEL_BUY,u1"),
    (c.Sell("u1", "ABC", 5), "SELL,u1,ABC,0.05"),
    (c.CommitSell("u1"), "COMMIT_SELL,u1"),
    (c.CancelSell("u1"), "CANCEL_SELL,u1"),
    (c.SetBuyAmount("u1", "AB", 100), "SET_BUY_AMOUNT,u1,AB,1.00"),
    (c.CancelSetBuy("u1", "AB"), "CANCEL_SET_BUY,u1,AB"),
    (c.SetBuyTrigger("u1", "A", 150), "SET_BUY_TRIGGER,u1,A,1.50"),
    (c.SetSellAmount("u1", "A", DOLLARS), "SET_SELL_AMOUNT,u1,A,123.45"),
    (c.SetSellTrigger("u1", "A", DOLLARS), "SET_SELL_TRIGGER,u1,A,123.45"),
    (c.CancelSetSell("u1", "A"), "CANCEL_SET_SELL,u1,A"),
    (c.DisplaySummary("u1"), "DISPLAY_SUMMARY,u1"),
    (c.DisplaySummary("u1", 42), "DISPLAY_SUMMARY,u1,42"),
    (c.DumpLog("out.xml"), "DUMPLOG,out.xml"),
    (c.DumpLog("out.xml", "u1"), "DUMPLOG,u1,out.xml"),
    (c.Watch("u1"), "WATCH,u1"),
    (c.Stats(), "STATS"),
    (c.Ping(), "PING"),
    (c.Quit(), "QUIT"),
])
def test_line_is_the_canonical_request_without_txn(cmd, line):
    assert cmd.line() == line
    assert dataclasses.replace(cmd, txn=99).line() == line


@pytest.mark.parametrize("cmd", [c.Auth("s3cret-token"), c.Login("u1", "s3cret-pass"),
                                 c.Passwd("u1", "s3cret-pass")])
def test_secrets_never_appear_in_line_or_repr(cmd):
    assert "s3cret" not in cmd.line()
    assert "s3cret" not in repr(cmd)


def test_commands_are_immutable():
    cmd = c.Buy("u1", "ABC", 100, 7)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cmd.amount = 1  # type: ignore[misc]


def test_commands_compare_by_value_including_txn():
    assert c.Buy("u1", "ABC", 100, 7) == c.Buy("u1", "ABC", 100, 7)
    assert c.Buy("u1", "ABC", 100, 7) != c.Buy("u1", "ABC", 100, 8)
    assert c.Buy("u1", "ABC", 100) != c.Sell("u1", "ABC", 100)


def test_the_sixteen_trading_commands_of_commands_md():
    names = {"ADD", "QUOTE", "BUY", "COMMIT_BUY", "CANCEL_BUY", "SELL", "COMMIT_SELL",
             "CANCEL_SELL", "SET_BUY_AMOUNT", "CANCEL_SET_BUY", "SET_BUY_TRIGGER",
             "SET_SELL_AMOUNT", "SET_SELL_TRIGGER", "CANCEL_SET_SELL", "DUMPLOG", "DISPLAY_SUMMARY"}
    assert names == c.TRADING_NAMES
    assert all(cls.TRADING for cls in c.TRADING_COMMANDS)
    assert not any(cls.TRADING for cls in c.SESSION_COMMANDS)


def test_reads_are_not_state_changing_and_the_rest_are():
    reads = {c.Quote, c.DisplaySummary, c.DumpLog}
    for cls in c.TRADING_COMMANDS:
        assert cls.STATE_CHANGING is (cls not in reads), cls.NAME
    assert not any(cls.STATE_CHANGING for cls in c.SESSION_COMMANDS)


def test_every_command_carries_txn_defaulting_to_none():
    for cls in (*c.TRADING_COMMANDS, *c.SESSION_COMMANDS):
        fields = [f.name for f in dataclasses.fields(cls)]
        assert fields[-1] == "txn", cls.NAME
        assert dataclasses.fields(cls)[-1].default is None


@pytest.mark.parametrize(("cmd", "fields"), [
    (c.Add("u1", DOLLARS), (None, DOLLARS, None)),
    (c.Quote("u1", "ABC"), ("ABC", None, None)),
    (c.Buy("u1", "ABC", DOLLARS), ("ABC", DOLLARS, None)),
    (c.SetBuyTrigger("u1", "ABC", 250), ("ABC", 250, None)),
    (c.CancelSetSell("u1", "ABC"), ("ABC", None, None)),
    (c.CommitBuy("u1"), (None, None, None)),
    (c.DisplaySummary("u1", 5), (None, None, None)),
    (c.DumpLog("out.xml", "u1"), (None, None, "out.xml")),
])
def test_audit_fields_are_symbol_funds_and_filename_as_the_log_names_them(cmd, fields):
    assert cmd.audit_fields() == fields
