"""BUY and SELL, held for 60 s until COMMIT or CANCEL, and their release when the 60 s are over."""

from __future__ import annotations

from typing import Any

from protocol import commands as c
from protocol.errors import ErrorCode
from protocol.limits import PENDING_LIFETIME_MS
from protocol.money import format_cents
from protocol.quote import PriceQuote
from protocol.replies import PENDING_EXPIRED, Reply
from server.shards.account import Account, Pending
from server.shards.engine.audit import AuditRecorder
from server.shards.engine.funds import move_cash
from server.shards.engine.outcomes import Refused

# --- checks made before a quote is fetched --------------------------------------------------------


def check_buy_funds(acct: Account, cmd: c.Buy) -> None:
    """BUY needs `cash >= amount` whatever the price."""
    if acct.cash < cmd.amount:
        raise Refused(ErrorCode.INSUFFICIENT_FUNDS, f"BUY needs {format_cents(cmd.amount)}, "
                                                    f"cash is {format_cents(acct.cash)}")


def check_free_shares(acct: Account, cmd: c.Sell) -> None:
    """No price makes 0 shares worth a positive amount."""
    if acct.holdings.get(cmd.symbol, 0) == 0:
        raise Refused(ErrorCode.INSUFFICIENT_SHARES, f"no free shares of {cmd.symbol} to sell")


# --- the six commands -----------------------------------------------------------------------------


def buy(acct: Account, cmd: c.Buy, txn: int, now: int, quote: PriceQuote,
        audit: AuditRecorder) -> Reply:
    price = quote.price
    shares = cmd.amount // price
    if shares == 0:
        raise Refused(ErrorCode.AMOUNT_TOO_SMALL, f"{format_cents(cmd.amount)} buys no share of "
                                                  f"{cmd.symbol} at {format_cents(price)}")
    cost = shares * price
    entry = Pending(txn, cmd.symbol, shares, price, now)
    acct.pending_buys.append(entry)
    move_cash(acct, audit, txn, now, "buy_reserve", cmd.symbol, shares, price, -cost)
    return Reply(txn, "BUY", True, {
        "symbol": cmd.symbol, "shares": shares, "price": format_cents(price),
        "cost": format_cents(cost), "expires_at": entry.expires_at,
        "cash": format_cents(acct.cash)})


def commit_buy(acct: Account, cmd: c.CommitBuy, txn: int, now: int, quote: Any,
               audit: AuditRecorder) -> Reply:
    entry = _newest(acct.pending_buys, ErrorCode.NO_PENDING_BUY, "BUY")
    held = _to_holdings(acct, entry, "buy_commit", txn, now)
    return Reply(txn, "COMMIT_BUY", True, {
        "symbol": entry.symbol, "shares": entry.shares, "price": format_cents(entry.price),
        "cost": format_cents(entry.shares * entry.price), "holding": held,
        "cash": format_cents(acct.cash)})


def cancel_buy(acct: Account, cmd: c.CancelBuy, txn: int, now: int, quote: Any,
               audit: AuditRecorder) -> Reply:
    entry = _newest(acct.pending_buys, ErrorCode.NO_PENDING_BUY, "BUY")
    cost = entry.shares * entry.price
    move_cash(acct, audit, txn, now, "buy_release", entry.symbol, entry.shares, entry.price, cost)
    return Reply(txn, "CANCEL_BUY", True, {
        "symbol": entry.symbol, "shares": entry.shares, "price": format_cents(entry.price),
        "cost": format_cents(cost), "cash": format_cents(acct.cash)})


def sell(acct: Account, cmd: c.Sell, txn: int, now: int, quote: PriceQuote,
         audit: AuditRecorder) -> Reply:
    held = acct.holdings.get(cmd.symbol, 0)
    price = quote.price
    if held * price < cmd.amount:
        raise Refused(ErrorCode.INSUFFICIENT_SHARES,
                      f"{held} shares of {cmd.symbol} at {format_cents(price)} are worth "
                      f"less than {format_cents(cmd.amount)}")
    shares = cmd.amount // price
    if shares == 0:
        raise Refused(ErrorCode.AMOUNT_TOO_SMALL, f"{format_cents(cmd.amount)} sells no share "
                                                  f"of {cmd.symbol} at {format_cents(price)}")
    acct.holdings[cmd.symbol] = held - shares
    entry = Pending(txn, cmd.symbol, shares, price, now)
    acct.pending_sells.append(entry)
    acct.record(txn, now, "sell_reserve", cmd.symbol, shares, price, 0)
    return Reply(txn, "SELL", True, {
        "symbol": cmd.symbol, "shares": shares, "price": format_cents(price),
        "proceeds": format_cents(shares * price), "expires_at": entry.expires_at,
        "holding": held - shares, "cash": format_cents(acct.cash)})


def commit_sell(acct: Account, cmd: c.CommitSell, txn: int, now: int, quote: Any,
                audit: AuditRecorder) -> Reply:
    entry = _newest(acct.pending_sells, ErrorCode.NO_PENDING_SELL, "SELL")
    proceeds = entry.shares * entry.price
    move_cash(acct, audit, txn, now, "sell_commit", entry.symbol, entry.shares, entry.price,
              proceeds)
    return Reply(txn, "COMMIT_SELL", True, {
        "symbol": entry.symbol, "shares": entry.shares, "price": format_cents(entry.price),
        "proceeds": format_cents(proceeds), "cash": format_cents(acct.cash)})


def cancel_sell(acct: Account, cmd: c.CancelSell, txn: int, now: int, quote: Any,
                audit: AuditRecorder) -> Reply:
    entry = _newest(acct.pending_sells, ErrorCode.NO_PENDING_SELL, "SELL")
    held = _to_holdings(acct, entry, "sell_release", txn, now)
    return Reply(txn, "CANCEL_SELL", True, {
        "symbol": entry.symbol, "shares": entry.shares, "price": format_cents(entry.price),
        "holding": held, "cash": format_cents(acct.cash)})


def _newest(stack: list[Pending], code: ErrorCode, side: str) -> Pending:
    """Take the newest pending entry of a side: COMMIT and CANCEL act on it."""
    if not stack:
        raise Refused(code, f"no pending {side} within the last 60 s")
    return stack.pop()


def _to_holdings(acct: Account, entry: Pending, kind: str, txn: int, now: int) -> int:
    """The entry's shares join the free holdings (a committed BUY, a released SELL), recorded;
    returns the holding."""
    held = acct.holdings[entry.symbol] = acct.holdings.get(entry.symbol, 0) + entry.shares
    acct.record(txn, now, kind, entry.symbol, entry.shares, entry.price, 0)
    return held


# --- expiry ---------------------------------------------------------------------------------------


def expire_pending(acct: Account, now: int, audit: AuditRecorder) -> int:
    """Release the account's pending entries whose 60 s are over at `now`; returns how many.

    Each release is dated at its entry's expiry time, whoever noticed it first.
    """
    count = 0
    cutoff = now - PENDING_LIFETIME_MS
    for stack, is_buy in ((acct.pending_buys, True), (acct.pending_sells, False)):
        for entry in stack:
            if entry.created_at <= cutoff:
                break
        else:
            continue  # most stacks hold nothing expired
        alive = []
        for entry in stack:
            if entry.created_at > cutoff:
                alive.append(entry)
            else:
                count += 1
                _release(acct, entry, is_buy, audit)
        stack[:] = alive
    return count


def _release(acct: Account, entry: Pending, is_buy: bool, audit: AuditRecorder) -> None:
    at = entry.expires_at
    if is_buy:
        move_cash(acct, audit, entry.txn, at, "buy_release", entry.symbol, entry.shares,
                  entry.price, entry.shares * entry.price)
    else:
        _to_holdings(acct, entry, "sell_release", entry.txn, at)
    audit.push(acct.user, PENDING_EXPIRED, {
        "user": acct.user, "side": "buy" if is_buy else "sell", "txn": entry.txn,
        "symbol": entry.symbol, "shares": entry.shares, "price": format_cents(entry.price),
        "cash": format_cents(acct.cash)})
