"""Buy and sell triggers: SET_*_AMOUNT reserves cash or shares, SET_*_TRIGGER arms the price,
CANCEL_SET_* gives the reservation back, and a crossing quote fills the trigger."""

from __future__ import annotations

from typing import Any

from protocol import commands as c
from protocol.errors import ErrorCode
from protocol.money import format_cents
from protocol.replies import TRIGGER_FIRED, Reply
from server.shards.account import Account, BuyTrigger, SellTrigger
from server.shards.engine.audit import AuditRecorder
from server.shards.engine.funds import move_cash
from server.shards.engine.outcomes import Refused

# --- buy triggers ---------------------------------------------------------------------------------


def set_buy_amount(acct: Account, cmd: c.SetBuyAmount, txn: int, now: int, quote: Any,
                   audit: AuditRecorder) -> Reply:
    trig = acct.buy_triggers.get(cmd.symbol)
    old = trig.reserved if trig is not None else 0
    if acct.cash + old < cmd.amount:
        raise Refused(ErrorCode.INSUFFICIENT_FUNDS,
                      f"SET_BUY_AMOUNT needs {format_cents(cmd.amount)}, cash with the old "
                      f"reservation is {format_cents(acct.cash + old)}")
    if trig is not None and trig.price is not None and cmd.amount < trig.price:
        raise Refused(ErrorCode.AMOUNT_TOO_SMALL,
                      f"{format_cents(cmd.amount)} is below the trigger price "
                      f"{format_cents(trig.price)} of {cmd.symbol}")
    if old:
        move_cash(acct, audit, txn, now, "trigger_release", cmd.symbol, 0, None, old)
    move_cash(acct, audit, txn, now, "trigger_reserve", cmd.symbol, 0, None, -cmd.amount)
    if trig is None:
        trig = acct.buy_triggers[cmd.symbol] = BuyTrigger(cmd.amount)
    else:
        trig.reserved = cmd.amount
    return Reply(txn, "SET_BUY_AMOUNT", True, _buy_trigger_result(cmd.symbol, trig, acct))


def set_buy_trigger(acct: Account, cmd: c.SetBuyTrigger, txn: int, now: int, quote: Any,
                    audit: AuditRecorder) -> Reply:
    trig = _buy_trigger(acct, cmd.symbol)
    if trig.reserved < cmd.price:
        raise Refused(ErrorCode.AMOUNT_TOO_SMALL,
                      f"reserved {format_cents(trig.reserved)} is below the trigger price "
                      f"{format_cents(cmd.price)}")
    trig.price = cmd.price
    return Reply(txn, "SET_BUY_TRIGGER", True, _buy_trigger_result(cmd.symbol, trig, acct))


def cancel_set_buy(acct: Account, cmd: c.CancelSetBuy, txn: int, now: int, quote: Any,
                   audit: AuditRecorder) -> Reply:
    trig = _buy_trigger(acct, cmd.symbol)
    del acct.buy_triggers[cmd.symbol]
    move_cash(acct, audit, txn, now, "trigger_release", cmd.symbol, 0, None, trig.reserved)
    return Reply(txn, "CANCEL_SET_BUY", True, {
        "symbol": cmd.symbol, "released": format_cents(trig.reserved),
        "cash": format_cents(acct.cash)})


def fill_buy(acct: Account, symbol: str, price: int, txn: int, now: int,
             audit: AuditRecorder) -> None:
    """A quote at `price` crossed the user's buy trigger: as many shares as the reservation
    buys join the holdings, the rest of it returns to cash."""
    trig = acct.buy_triggers.pop(symbol)
    shares = trig.reserved // price
    spent = shares * price
    refund = trig.reserved - spent
    acct.holdings[symbol] = acct.holdings.get(symbol, 0) + shares
    audit.system_event(acct, txn, now, "SET_BUY_TRIGGER", symbol, spent)
    acct.cash += refund
    acct.record(txn, now, "trigger_fill", symbol, shares, price, refund)
    if refund:
        audit.account_transaction(acct, txn, now, refund)
    audit.push(acct.user, TRIGGER_FIRED, {
        "user": acct.user, "txn": txn, "side": "buy", "symbol": symbol, "shares": shares,
        "price": format_cents(price), "amount": format_cents(spent),
        "refund": format_cents(refund), "cash": format_cents(acct.cash)})


def _buy_trigger(acct: Account, symbol: str) -> BuyTrigger:
    trig = acct.buy_triggers.get(symbol)
    if trig is None:
        raise Refused(ErrorCode.NO_BUY_AMOUNT, f"no SET_BUY_AMOUNT for {symbol}")
    return trig


def _buy_trigger_result(symbol: str, trig: BuyTrigger, acct: Account) -> dict[str, Any]:
    return {"symbol": symbol, "reserved": format_cents(trig.reserved),
            "trigger_price": None if trig.price is None else format_cents(trig.price),
            "cash": format_cents(acct.cash)}


# --- sell triggers --------------------------------------------------------------------------------


def set_sell_amount(acct: Account, cmd: c.SetSellAmount, txn: int, now: int, quote: Any,
                    audit: AuditRecorder) -> Reply:
    trig = acct.sell_triggers.get(cmd.symbol)
    back = trig.reserved_shares if trig is not None else 0
    free = acct.holdings.get(cmd.symbol, 0) + back
    if free < 1:
        raise Refused(ErrorCode.NO_HOLDING, f"no shares of {cmd.symbol}")
    shares = 0
    if trig is not None and trig.price is not None:
        shares = cmd.amount // trig.price
        if shares == 0:
            raise Refused(ErrorCode.AMOUNT_TOO_SMALL,
                          f"{format_cents(cmd.amount)} sells no share at the trigger price "
                          f"{format_cents(trig.price)}")
        _check_free(cmd.symbol, shares, free)
    if trig is None:
        trig = acct.sell_triggers[cmd.symbol] = SellTrigger(cmd.amount)
    else:
        trig.amount = cmd.amount
    _reserve_shares(acct, trig, cmd.symbol, back, shares, txn, now)
    return Reply(txn, "SET_SELL_AMOUNT", True, _sell_trigger_result(cmd.symbol, trig, acct))


def set_sell_trigger(acct: Account, cmd: c.SetSellTrigger, txn: int, now: int, quote: Any,
                     audit: AuditRecorder) -> Reply:
    trig = _sell_trigger(acct, cmd.symbol)
    shares = trig.amount // cmd.price
    if shares == 0:
        raise Refused(ErrorCode.AMOUNT_TOO_SMALL, f"{format_cents(trig.amount)} sells no share "
                                                  f"at {format_cents(cmd.price)}")
    back = trig.reserved_shares
    _check_free(cmd.symbol, shares, acct.holdings.get(cmd.symbol, 0) + back)
    trig.price = cmd.price
    _reserve_shares(acct, trig, cmd.symbol, back, shares, txn, now)
    return Reply(txn, "SET_SELL_TRIGGER", True, _sell_trigger_result(cmd.symbol, trig, acct))


def cancel_set_sell(acct: Account, cmd: c.CancelSetSell, txn: int, now: int, quote: Any,
                    audit: AuditRecorder) -> Reply:
    trig = _sell_trigger(acct, cmd.symbol)
    del acct.sell_triggers[cmd.symbol]
    held = acct.holdings.get(cmd.symbol, 0) + trig.reserved_shares
    if trig.reserved_shares:
        acct.holdings[cmd.symbol] = held
        acct.record(txn, now, "trigger_release", cmd.symbol, trig.reserved_shares, trig.price,
                    0)
    return Reply(txn, "CANCEL_SET_SELL", True, {
        "symbol": cmd.symbol, "released_shares": trig.reserved_shares, "holding": held,
        "cash": format_cents(acct.cash)})


def fill_sell(acct: Account, symbol: str, price: int, txn: int, now: int,
              audit: AuditRecorder) -> None:
    """A quote at `price` crossed the user's sell trigger: its reserved shares are sold."""
    trig = acct.sell_triggers.pop(symbol)
    shares = trig.reserved_shares
    proceeds = shares * price
    audit.system_event(acct, txn, now, "SET_SELL_TRIGGER", symbol, proceeds)
    move_cash(acct, audit, txn, now, "trigger_fill", symbol, -shares, price, proceeds)
    audit.push(acct.user, TRIGGER_FIRED, {
        "user": acct.user, "txn": txn, "side": "sell", "symbol": symbol, "shares": shares,
        "price": format_cents(price), "amount": format_cents(proceeds),
        "cash": format_cents(acct.cash)})


def _sell_trigger(acct: Account, symbol: str) -> SellTrigger:
    trig = acct.sell_triggers.get(symbol)
    if trig is None:
        raise Refused(ErrorCode.NO_SELL_AMOUNT, f"no SET_SELL_AMOUNT for {symbol}")
    return trig


def _check_free(symbol: str, shares: int, free: int) -> None:
    if shares > free:
        raise Refused(ErrorCode.INSUFFICIENT_SHARES,
                      f"{shares} shares of {symbol} needed, {free} held")


def _reserve_shares(acct: Account, trig: SellTrigger, symbol: str, back: int, shares: int,
                    txn: int, now: int) -> None:
    """Return the shares a sell trigger held, then hold `shares` (0: none) at its price."""
    held = acct.holdings.get(symbol, 0)
    if back:
        held += back
        acct.record(txn, now, "trigger_release", symbol, back, trig.price, 0)
    if shares:
        held -= shares
        acct.record(txn, now, "trigger_reserve", symbol, shares, trig.price, 0)
    acct.holdings[symbol] = held
    trig.reserved_shares = shares


def _sell_trigger_result(symbol: str, trig: SellTrigger, acct: Account) -> dict[str, Any]:
    return {"symbol": symbol, "amount": format_cents(trig.amount),
            "trigger_price": None if trig.price is None else format_cents(trig.price),
            "reserved_shares": trig.reserved_shares, "holding": acct.holdings.get(symbol, 0),
            "cash": format_cents(acct.cash)}
