"""client_tui.model.intents: the command palette's typed commands."""

import pytest

from client_tui.model.intents import (
    AddFunds,
    CancelTrigger,
    IntentError,
    PlaceOrder,
    SettleOrder,
    SetTrigger,
    SymbolAction,
    parse,
    parse_amount,
)
from client_tui.session import SETTLE_COMMANDS


def test_buy_symbol_amount():
    assert parse("buy ABC 100") == PlaceOrder("buy", "ABC", 10000)


def test_sell_accepts_lower_case_symbols_and_cents():
    assert parse("SELL abc 50.5") == PlaceOrder("sell", "ABC", 5050)


@pytest.mark.parametrize("text", ["trigger buy ABC 500 @ 12.50", "trigger buy ABC 500 @12.50",
                                  "trigger buy ABC 500@12.50", "trigger buy abc 500 at 12.5"])
def test_trigger_with_at_sign_spaced_or_not(text):
    assert parse(text) == SetTrigger("buy", "ABC", 50000, 1250)


def test_trigger_sell():
    assert parse("trigger sell XYZ 75 @ 9") == SetTrigger("sell", "XYZ", 7500, 900)


def test_cancel_trigger():
    assert parse("cancel trigger sell XYZ") == CancelTrigger("sell", "XYZ")


def test_commit_and_cancel_the_newest_pending_order():
    assert parse("commit buy") == SettleOrder("commit", "buy")
    assert parse("cancel sell") == SettleOrder("cancel", "sell")


@pytest.mark.parametrize(("action", "side", "line"), [
    ("commit", "buy", "COMMIT_BUY,u"), ("cancel", "buy", "CANCEL_BUY,u"),
    ("commit", "sell", "COMMIT_SELL,u"), ("cancel", "sell", "CANCEL_SELL,u")])
def test_a_settle_intent_is_sent_as_the_command_of_its_action_and_side(action, side, line):
    settle = parse(f"{action} {side}")
    assert SETTLE_COMMANDS[settle.action, settle.side]("u").line() == line


def test_add_funds_accepts_dollar_sign_and_thousands_commas():
    assert parse("add $1,250.75") == AddFunds(125075)


@pytest.mark.parametrize("verb", ["quote", "watch", "unwatch"])
def test_symbol_actions(verb):
    assert parse(f"{verb} qrs") == SymbolAction(verb, "QRS")


@pytest.mark.parametrize("text, hint", [
    ("buy ABC", "usage: buy SYM AMOUNT"),
    ("buy ABCD 100", "not a stock symbol"),
    ("buy ABC 1.234", "not an amount"),
    ("buy ABC 0", "more than zero"),
    ("buy ABC -5", "not an amount"),
    ("trigger buy ABC 500 12.50", "usage: trigger"),
    ("trigger hold ABC 500 @ 1", "expected buy or sell"),
    ("commit", "usage: commit buy|sell"),
    ("frobnicate", "unknown command"),
    ("", "type a command"),
])
def test_invalid_commands_say_what_is_wrong(text, hint):
    with pytest.raises(IntentError, match=hint):
        parse(text)


def test_amounts_reject_exponents_and_nan():
    for text in ("1e3", "nan", "inf", "1_000"):
        with pytest.raises(IntentError):
            parse_amount(text)


def test_descriptions_name_the_money():
    assert PlaceOrder("buy", "ABC", 10000).describe() == "BUY $100.00 of ABC"
    assert SetTrigger("buy", "ABC", 50000, 1250).describe() == (
        "buy trigger: $500.00 of ABC @ 12.50")
