"""Command palette (Ctrl+P) provider for typed trading commands: `buy ABC 100`, `sell ABC 50`,
`trigger buy ABC 500 @ 12.50`, `commit buy`, `add 1000`, `watch XYZ`, ..."""

from __future__ import annotations

from functools import partial
from typing import cast

from rich.text import Text
from textual.command import DiscoveryHit, Hit, Hits, Provider

from client_tui.controller import Trader
from client_tui.model.intents import USAGE, IntentError, PlaceOrder, parse

VERBS = {usage.split()[0] for usage in USAGE}
#: Shown when the palette opens with nothing typed: each example with the usage it follows (its
#: own help line, so no line repeats under every example).
EXAMPLES = (
    ("buy ABC 100", "buy SYM AMOUNT: opens the ticket (typed in full, places it)"),
    ("sell ABC 50", "sell SYM AMOUNT: opens the ticket (typed in full, places it)"),
    ("trigger buy ABC 500 @ 12.50", "trigger buy|sell SYM AMOUNT @ PRICE"),
    ("commit buy", "commit buy|sell: the newest pending order of that side"),
    ("cancel buy", "cancel buy|sell · cancel trigger buy|sell SYM"),
    ("add 1000", "add AMOUNT: dollars to your cash"),
    ("watch XYZ", "watch|unwatch|quote SYM"),
)


class TradeCommands(Provider):
    """Parses what is typed; a valid command is the top hit, a near miss shows its usage."""

    @property
    def trader(self) -> Trader:
        return cast(Trader, self.app)

    async def search(self, query: str) -> Hits:
        if not getattr(self.app, "logged_in", False) or not query.strip():
            return
        try:
            intent = parse(query)
        except IntentError as exc:
            if query.split()[0].lower() in VERBS:
                yield Hit(0.5, Text.assemble((query.strip(), "bold"), "  ", (str(exc), "red")),
                          partial(self.app.notify, str(exc), severity="error"),
                          text=query.strip(), help="not a valid command yet")
            return
        yield Hit(1.0, Text.assemble((query.strip(), "bold"), "  →  ", intent.describe()),
                  partial(self.trader.run_intent, intent), text=query.strip(),
                  help="Enter runs it")

    async def discover(self) -> Hits:
        if not getattr(self.app, "logged_in", False):
            return
        for example, usage in EXAMPLES:
            intent = parse(example)
            # An example order only opens the ticket; typed in full, it is placed at once.
            command = (partial(self.trader.open_ticket, intent.side, intent.symbol, intent.amount)
                       if isinstance(intent, PlaceOrder) else partial(self.trader.run_intent,
                                                                      intent))
            yield DiscoveryHit(Text.assemble((example, "bold"), "  →  ", intent.describe()),
                               command, text=example, help=usage)
