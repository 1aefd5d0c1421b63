"""Random command sequences against the engine, checked with a ledger built only from what clients
see (replies and pushed events), never from the engine's own counters.

After each step, for every account: nothing is negative; the money is all there
(cash + cents held by pending buys + buy reservations == added - cost of committed buys - cost of
fired buy triggers + proceeds of committed sells and fired sell triggers); every symbol's shares
are all there (free + pending sells + reserved == bought - sold); the pending stacks are those the
replies built, less what COMMIT/CANCEL took and what expired. Failed commands and retries change
nothing.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule

from protocol.limits import RECENT_REPLIES
from protocol.money import format_cents, parse_cents
from protocol.parser import parse_request
from protocol.quote import PriceQuote
from protocol.replies import PENDING_EXPIRED, TRIGGER_FIRED, Reply
from server.shards.engine import Engine, NeedQuote, quote_unavailable
from tests.shards.harness import T0

USERS = ("ann", "bob", "cy")
SYMBOLS = ("AB", "XYZ")
users = st.sampled_from(("ann", "ann", "ann", "bob", "bob", "cy"))  # cy starts with no account
symbols = st.sampled_from(SYMBOLS)
shares = st.integers(0, 12)
extras = st.integers(-50, 2_000)
look_first = st.booleans()  # take a summary before the command (False leaves expiry to it)


def cents(text: str) -> int:
    value = parse_cents(text.lstrip("-"))
    assert value is not None, text
    return -value if text.startswith("-") else value


@dataclass
class Ledger:
    """One user's money and shares as the replies and pushed events told them."""

    added: int = 0
    bought_cost: int = 0
    proceeds: int = 0
    bought: Counter[str] = field(default_factory=Counter)
    sold: Counter[str] = field(default_factory=Counter)
    # stacks of (txn, symbol, shares, price, expires_at), oldest first
    pending: dict[str, list[tuple[int, str, int, int, int]]] = field(
        default_factory=lambda: {"buy": [], "sell": []})
    # (txn, line, reply JSON) of every state-changing command the engine stored
    stored: list[tuple[int, str, str]] = field(default_factory=list)


class TradingDesk(RuleBasedStateMachine):
    """The engine of one shard driven by random commands, clock steps, sweeps and retries."""

    @initialize(cash=st.lists(st.integers(1, 10_000_000), min_size=2, max_size=2),
                prices=st.lists(st.integers(1, 50_000), min_size=2, max_size=2))
    def open_desk(self, cash, prices) -> None:
        self.engine = Engine("shard-0")
        self.now = T0
        self.txn = 0
        self.prices = dict(zip(SYMBOLS, prices))
        self.ledgers: dict[str, Ledger] = {}
        for user, amount in zip(USERS, cash):
            self.trade(f"ADD,{user},{format_cents(amount)}", False)

    # --- driving the engine -------------------------------------------------------------------

    def next_txn(self) -> int:
        self.txn += 1
        return self.txn

    def absorb(self) -> int:
        """Drain the engine and book its pushed events; returns how many triggers fired."""
        fired = 0
        for user, push in self.engine.drain().pushes:
            data = push.data
            assert data["user"] == user
            ledger = self.ledgers[user]
            if push.event == PENDING_EXPIRED:
                stack = ledger.pending[data["side"]]
                entry = next(e for e in stack if e[0] == data["txn"])
                assert entry[1:4] == (data["symbol"], data["shares"], cents(data["price"]))
                assert entry[4] <= self.now, "expired before its 60 s were over"
                stack.remove(entry)
            else:
                assert push.event == TRIGGER_FIRED
                fired += 1
                if data["side"] == "buy":
                    ledger.bought_cost += cents(data["amount"])
                    ledger.bought[data["symbol"]] += data["shares"]
                else:
                    ledger.proceeds += cents(data["amount"])
                    ledger.sold[data["symbol"]] += data["shares"]
        return fired

    def execute(self, line: str, *, unavailable: bool = False, txn: int | None = None) -> Reply:
        txn = self.next_txn() if txn is None else txn
        cmd = parse_request(f"[{txn}] {line}")
        outcome = self.engine.execute(cmd, self.now)
        if isinstance(outcome, NeedQuote):
            assert outcome == NeedQuote(cmd.symbol, cmd.user)
            quote = quote_unavailable() if unavailable else PriceQuote(
                cmd.symbol, self.prices[cmd.symbol], self.now, f"k{self.now}", cmd.user, True)
            outcome = self.engine.execute(cmd, self.now, quote)
        assert isinstance(outcome, Reply)
        assert (outcome.txn, outcome.cmd) == (txn, cmd.NAME)
        self.absorb()
        return outcome

    def summary(self, user: str) -> dict:
        reply = self.execute(f"DISPLAY_SUMMARY,{user}")
        assert reply.ok, reply
        return reply.result

    def trade(self, line: str, look: bool, *, unavailable: bool = False) -> Reply:
        """Run one trading command and book its reply in the user's ledger."""
        name, user = line.split(",")[:2]
        ledger = self.ledgers.get(user)
        before = self.summary(user) if look and ledger is not None else None
        reply = self.execute(line, unavailable=unavailable)
        if ledger is None and name not in ("ADD", "QUOTE"):
            assert str(reply.code) == "unknown_user"
            return reply
        if reply.ok:
            self.book(user, name, reply)
        else:
            assert reply.code is not None and reply.message
            if unavailable and name in ("BUY", "SELL", "QUOTE"):
                assert str(reply.code) in ("quote_unavailable", "insufficient_funds",
                                           "insufficient_shares")
            if str(reply.code) in ("no_pending_buy", "no_pending_sell"):
                side = "buy" if reply.code == "no_pending_buy" else "sell"
                assert not self.ledgers[user].pending[side]
            if before is not None:
                assert self.summary(user) == before, "a failed command changed the state"
        if name != "QUOTE" and user in self.ledgers:
            self.ledgers[user].stored.append((reply.txn, line, reply.to_json()))
        self.check(user)
        return reply

    def book(self, user: str, name: str, reply: Reply) -> None:
        r = reply.result
        if name == "ADD":
            self.ledgers.setdefault(user, Ledger()).added += cents(r["amount"])
            return
        if name == "QUOTE":
            return
        ledger = self.ledgers[user]
        if name in ("BUY", "SELL"):
            side = name.lower()
            ledger.pending[side].append(
                (reply.txn, r["symbol"], r["shares"], cents(r["price"]), r["expires_at"]))
            assert r["expires_at"] == self.now + 60_000
        elif name in ("COMMIT_BUY", "CANCEL_BUY", "COMMIT_SELL", "CANCEL_SELL"):
            side = "buy" if name.endswith("BUY") else "sell"
            stack = ledger.pending[side]
            assert stack, f"{name} settled an entry no reply created"
            _, symbol, shares, price, _ = stack.pop()  # the newest alive one
            assert (r["symbol"], r["shares"], cents(r["price"])) == (symbol, shares, price)
            if name == "COMMIT_BUY":
                assert cents(r["cost"]) == shares * price
                ledger.bought_cost += shares * price
                ledger.bought[symbol] += shares
            elif name == "COMMIT_SELL":
                assert cents(r["proceeds"]) == shares * price
                ledger.proceeds += shares * price
                ledger.sold[symbol] += shares

    # --- the checks -----------------------------------------------------------------------------

    def check(self, user: str) -> None:
        ledger = self.ledgers.get(user)
        if ledger is None:
            return
        s = self.summary(user)
        cash = cents(s["cash"])
        assert cash >= 0
        assert all(n > 0 for n in s["holdings"].values())
        for side in ("buy", "sell"):
            model = [(t, sym, n, p, exp) for t, sym, n, p, exp in reversed(ledger.pending[side])]
            shown = [(e["txn"], e["symbol"], e["shares"], cents(e["price"]), e["expires_at"])
                     for e in s[f"pending_{side}s"]]
            assert shown == model
            assert all(exp > self.now for *_, exp in model)
        held_cash = sum(n * p for _, _, n, p, _ in ledger.pending["buy"])
        reserved = 0
        for t in s["buy_triggers"]:
            reserved += cents(t["reserved"])
            assert cents(t["reserved"]) > 0
            if t["trigger_price"] is not None:
                assert cents(t["reserved"]) >= cents(t["trigger_price"])
        assert cash + held_cash + reserved == ledger.added - ledger.bought_cost + ledger.proceeds
        reserved_shares = Counter()
        for t in s["sell_triggers"]:
            reserved_shares[t["symbol"]] += t["reserved_shares"]
            if t["trigger_price"] is None:
                assert t["reserved_shares"] == 0
            else:
                assert t["reserved_shares"] == cents(t["amount"]) // cents(t["trigger_price"]) > 0
        pending_shares = Counter()
        for _, sym, n, _, _ in ledger.pending["sell"]:
            pending_shares[sym] += n
        for sym in SYMBOLS:
            owned = s["holdings"].get(sym, 0) + pending_shares[sym] + reserved_shares[sym]
            assert owned == ledger.bought[sym] - ledger.sold[sym] >= 0, sym

    def check_all(self) -> dict[str, dict]:
        for user in self.ledgers:
            self.check(user)
        return {user: self.summary(user) for user in self.ledgers}

    # --- market and clock -----------------------------------------------------------------------

    @rule(symbol=symbols, percent=st.integers(-50, 50) | st.just(-100))
    def move_price(self, symbol, percent):
        self.prices[symbol] = max(1, self.prices[symbol] * (100 + percent) // 100)

    @rule(ms=st.integers(0, 5_000) | st.integers(0, 30_000) | st.integers(55_000, 130_000),
          timer=st.booleans(), data=st.data())
    def tick(self, ms, timer, data):
        """Time passes; the shard's timer may expire entries, and its sweep offer quotes."""
        self.now += ms
        if timer:
            self.engine.expire_due(self.now)
            self.absorb()
            self.check_all()
            self.sweep(data)

    @rule(data=st.data())
    def sweep(self, data):
        """Offer each symbol with an armed trigger a quote; every crossed trigger must fire."""
        for symbol, owner in self.engine.armed_symbols().items():
            percent = data.draw(st.integers(-40, 40), label=f"{symbol} moves by %")
            price = max(1, self.prices[symbol] * (100 + percent) // 100)
            quote = PriceQuote(symbol, price, self.now, "sweep", owner, data.draw(st.booleans()))
            before = sum(len(ls.pending["buy"]) for ls in self.ledgers.values())
            fired = len(self.engine.fire_triggers(quote, self.now, iter(self.next_txn, None)))
            assert self.absorb() == fired
            assert before == sum(len(ls.pending["buy"]) for ls in self.ledgers.values())
            for summary in self.check_all().values():
                for t in summary["buy_triggers"]:
                    if t["symbol"] == symbol and t["trigger_price"] is not None:
                        assert cents(t["trigger_price"]) < price, "crossed buy trigger left armed"
                for t in summary["sell_triggers"]:
                    if t["symbol"] == symbol and t["trigger_price"] is not None:
                        assert cents(t["trigger_price"]) > price, "crossed sell trigger left armed"
        armed_now = set()
        for summary in self.check_all().values():
            armed_now |= {t["symbol"] for t in summary["buy_triggers"] + summary["sell_triggers"]
                          if t["trigger_price"] is not None}
        assert armed_now == set(self.engine.armed_symbols())

    # --- trading commands ----------------------------------------------------------------------

    def amount(self, symbol: str, shares: int, extra: int) -> str:
        """`shares` whole shares at the current price and `extra` cents more (at least 0.01)."""
        return format_cents(max(1, shares * self.prices[symbol] + extra))

    def near(self, symbol: str, percent: int) -> str:
        return format_cents(max(1, self.prices[symbol] * (100 + percent) // 100))

    @rule(user=users, amount=st.integers(1, 5_000_000), look=look_first)
    def add(self, user, amount, look):
        self.trade(f"ADD,{user},{format_cents(amount)}", look)

    @rule(user=users, symbol=symbols, look=look_first)
    def quote(self, user, symbol, look):
        reply = self.trade(f"QUOTE,{user},{symbol}", look)
        assert reply.ok and cents(reply.result["price"]) == self.prices[symbol]

    @rule(user=users, symbol=symbols, shares=shares, extra=extras, look=look_first)
    def buy(self, user, symbol, shares, extra, look):
        self.trade(f"BUY,{user},{symbol},{self.amount(symbol, shares, extra)}", look)

    @rule(data=st.data(), extra=extras, look=look_first)
    def sell(self, data, extra, look):
        user, symbol, count = self.position(data)
        self.trade(f"SELL,{user},{symbol},{self.amount(symbol, count, extra)}", look)

    @rule(user=users, look=look_first)
    def commit_buy(self, user, look):
        self.trade(f"COMMIT_BUY,{user}", look)

    @rule(user=users, look=look_first)
    def cancel_buy(self, user, look):
        self.trade(f"CANCEL_BUY,{user}", look)

    @rule(user=users, look=look_first)
    def commit_sell(self, user, look):
        self.trade(f"COMMIT_SELL,{user}", look)

    @rule(user=users, look=look_first)
    def cancel_sell(self, user, look):
        self.trade(f"CANCEL_SELL,{user}", look)

    @rule(user=users, symbol=symbols, shares=shares, extra=extras, look=look_first)
    def set_buy_amount(self, user, symbol, shares, extra, look):
        self.trade(f"SET_BUY_AMOUNT,{user},{symbol},{self.amount(symbol, shares, extra)}", look)

    @rule(user=users, symbol=symbols, percent=st.integers(-30, 10), look=look_first)
    def set_buy_trigger(self, user, symbol, percent, look):
        self.trade(f"SET_BUY_TRIGGER,{user},{symbol},{self.near(symbol, percent)}", look)

    @rule(user=users, symbol=symbols, look=look_first)
    def cancel_set_buy(self, user, symbol, look):
        self.trade(f"CANCEL_SET_BUY,{user},{symbol}", look)

    @rule(user=users, symbol=symbols, shares=shares, extra=extras, look=look_first)
    def set_sell_amount(self, user, symbol, shares, extra, look):
        self.trade(f"SET_SELL_AMOUNT,{user},{symbol},{self.amount(symbol, shares, extra)}", look)

    @rule(user=users, symbol=symbols, percent=st.integers(-10, 30), look=look_first)
    def set_sell_trigger(self, user, symbol, percent, look):
        self.trade(f"SET_SELL_TRIGGER,{user},{symbol},{self.near(symbol, percent)}", look)

    @rule(user=users, symbol=symbols, look=look_first)
    def cancel_set_sell(self, user, symbol, look):
        self.trade(f"CANCEL_SET_SELL,{user},{symbol}", look)

    # Two-command sequences that reach the interesting states sooner (each command is checked).

    @rule(user=users, symbol=symbols, shares=shares, extra=extras)
    def buy_and_commit(self, user, symbol, shares, extra):
        if self.trade(f"BUY,{user},{symbol},{self.amount(symbol, shares, extra)}", False).ok:
            assert self.trade(f"COMMIT_BUY,{user}", False).ok

    def position(self, data) -> tuple[str, str, int]:
        """A user and symbol they own shares of (by the ledger), and a share count up to a bit
        more than they own; any user and symbol when nobody owns any."""
        owned = sorted((u, sym) for u, ls in self.ledgers.items() for sym in SYMBOLS
                       if ls.bought[sym] > ls.sold[sym])
        if not owned:
            return data.draw(users), data.draw(symbols), data.draw(shares)
        user, symbol = data.draw(st.sampled_from(owned))
        ledger = self.ledgers[user]
        return user, symbol, data.draw(st.integers(0, ledger.bought[symbol] - ledger.sold[symbol]
                                                   + 1))

    @rule(data=st.data(), extra=extras)
    def sell_and_commit(self, data, extra):
        user, symbol, count = self.position(data)
        if self.trade(f"SELL,{user},{symbol},{self.amount(symbol, count, extra)}", False).ok:
            assert self.trade(f"COMMIT_SELL,{user}", False).ok

    @rule(user=users, symbol=symbols, shares=shares, extra=extras, percent=st.integers(-30, 0))
    def arm_buy_trigger(self, user, symbol, shares, extra, percent):
        amount = self.amount(symbol, shares, extra)
        if self.trade(f"SET_BUY_AMOUNT,{user},{symbol},{amount}", False).ok:
            self.trade(f"SET_BUY_TRIGGER,{user},{symbol},{self.near(symbol, percent)}", False)

    @rule(data=st.data(), extra=extras, percent=st.integers(0, 30))
    def arm_sell_trigger(self, data, extra, percent):
        user, symbol, count = self.position(data)
        amount = self.amount(symbol, count, extra)
        if self.trade(f"SET_SELL_AMOUNT,{user},{symbol},{amount}", False).ok:
            self.trade(f"SET_SELL_TRIGGER,{user},{symbol},{self.near(symbol, percent)}", False)

    @rule(name=st.sampled_from(["BUY", "SELL", "QUOTE"]), user=users, symbol=symbols,
          shares=shares, extra=extras)
    def without_quote(self, name, user, symbol, shares, extra):
        line = f"{name},{user},{symbol}"
        if name != "QUOTE":
            line += f",{self.amount(symbol, shares, extra)}"
        self.trade(line, True, unavailable=True)

    # --- retries --------------------------------------------------------------------------------

    @precondition(lambda self: any(ls.stored for ls in self.ledgers.values()))
    @rule(data=st.data())
    def retry(self, data):
        user = data.draw(st.sampled_from(sorted(u for u, ls in self.ledgers.items() if ls.stored)))
        stored = self.ledgers[user].stored
        index = data.draw(st.integers(0, len(stored) - 1))
        txn, line, json_text = stored[index]
        other = f"ADD,{user},0.01"
        same = data.draw(st.booleans()) or line == other
        before = self.summary(user)
        reply = self.execute(line if same else other, txn=txn)
        kept = [t for t, _, _ in stored[-RECENT_REPLIES:]]
        if same and txn in kept:
            assert reply.replayed
            assert reply.to_json() == json_text[:-1] + ',"replayed":true}'
        else:
            assert str(reply.code) == "stale_txn" and not reply.replayed
        assert self.summary(user) == before


TradingDesk.TestCase.settings = settings(max_examples=200, stateful_step_count=50,
                                         deadline=None)
TestTradingDesk = TradingDesk.TestCase
