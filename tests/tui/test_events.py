"""client_tui.model.events: pushed events and results in words."""

from client_tui.model.events import command_of, describe_event, describe_result


def test_buy_trigger_fired_names_shares_price_refund_and_cash():
    text = describe_event("trigger_fired", {
        "user": "alice", "txn": 10001, "side": "buy", "symbol": "XYZ", "shares": 28,
        "price": "3.50", "amount": "98.00", "refund": "2.00", "cash": "815.62"})
    assert text == ("Buy trigger fired: bought 28 XYZ @ 3.50 for 98.00, 2.00 unspent back; "
                    "cash 815.62")


def test_sell_trigger_fired():
    text = describe_event("trigger_fired", {"side": "sell", "symbol": "ABC", "shares": 1,
                                            "price": "15.00", "amount": "15.00", "cash": "9.00"})
    assert text == "Sell trigger fired: sold 1 ABC @ 15.00 for 15.00; cash 9.00"


def test_pending_expired_says_what_came_back():
    text = describe_event("pending_expired", {"user": "a", "side": "buy", "txn": 3,
                                              "symbol": "ABC", "shares": 8, "price": "12.34",
                                              "cash": "1000.00"})
    assert text == ("Pending BUY #3 expired: 8 ABC @ 12.34, cost returned; cash 1,000.00")


def test_an_unknown_event_shows_its_fields():
    assert describe_event("market_closed", {"at": 1}) == 'market_closed: {"at":1}'


def test_results_are_compact_json_cut_short():
    assert describe_result({"cash": "1.00"}) == '{"cash":"1.00"}'
    long = describe_result({"x": "y" * 500})
    assert len(long) == 72 and long.endswith("…")


def test_command_of_a_line():
    assert command_of("buy,alice,ABC,1") == "BUY"
    assert command_of("PING") == "PING"
