"""client_tui.model.triggers: rows, distance to firing, and the order of SET_* requests."""

from client_tui.model.summary import BuyTrigger, SellTrigger, Summary
from client_tui.model.triggers import (
    crossed,
    distance_bp,
    plan,
    plan_buy,
    plan_sell,
    trigger_rows,
)


def test_rows_list_buys_then_sells_with_what_they_reserve():
    s = Summary("u", 0, {}, (), (), (BuyTrigger("XYZ", 20000, 450),),
                (SellTrigger("ABC", 15000, None, 0),), (), 0)
    buy, sell = trigger_rows(s)
    assert (buy.side, buy.symbol, buy.amount, buy.armed, buy.key) == (
        "buy", "XYZ", 20000, True, "buy:XYZ")
    assert (sell.side, sell.amount, sell.armed, sell.reserved_shares) == ("sell", 15000, False, 0)


def test_distance_is_the_move_needed_in_percent_of_the_last_price():
    assert distance_bp(450, 500) == -1000  # a buy at 4.50 needs the price 10% lower
    assert distance_bp(1500, 1234) == 2156  # a sell at 15.00 needs it 21.56% higher


def test_a_buy_is_crossed_at_or_below_its_price_and_a_sell_at_or_above():
    assert crossed("buy", 450, 450) and crossed("buy", 450, 400) and not crossed("buy", 450, 451)
    assert crossed("sell", 1500, 1500) and not crossed("sell", 1500, 1499)


def test_a_new_buy_trigger_sets_the_amount_then_the_price():
    assert plan_buy("u", "ABC", 50000, 1250, None) == [
        "SET_BUY_AMOUNT,u,ABC,500.00", "SET_BUY_TRIGGER,u,ABC,12.50"]


def test_changing_only_the_price_of_an_armed_buy_sends_only_the_price():
    existing = BuyTrigger("ABC", 50000, 1250)
    assert plan_buy("u", "ABC", 50000, 1100, existing) == ["SET_BUY_TRIGGER,u,ABC,11.00"]


def test_lowering_a_buy_amount_below_the_old_price_sets_the_price_first():
    existing = BuyTrigger("ABC", 50000, 4000)  # armed at 40.00
    # 30.00 < 40.00: SET_BUY_AMOUNT first would fail amount_too_small against the old price.
    assert plan_buy("u", "ABC", 3000, 1000, existing) == [
        "SET_BUY_TRIGGER,u,ABC,10.00", "SET_BUY_AMOUNT,u,ABC,30.00"]


def test_raising_a_buy_amount_sets_the_amount_first():
    existing = BuyTrigger("ABC", 5000, 1000)
    assert plan_buy("u", "ABC", 9000, 1500, existing) == [
        "SET_BUY_AMOUNT,u,ABC,90.00", "SET_BUY_TRIGGER,u,ABC,15.00"]


def test_a_new_sell_trigger_sets_the_amount_then_the_price():
    assert plan_sell("u", "ABC", 15000, 1500, None, free_shares=20) == [
        "SET_SELL_AMOUNT,u,ABC,150.00", "SET_SELL_TRIGGER,u,ABC,15.00"]


def test_a_sell_amount_that_rearms_to_zero_shares_at_the_old_price_goes_after_the_price():
    existing = SellTrigger("ABC", 15000, 1500, 10)
    # 10.00 // 15.00 = 0 shares: the amount can only follow a lower price.
    assert plan_sell("u", "ABC", 1000, 500, existing, free_shares=0) == [
        "SET_SELL_TRIGGER,u,ABC,5.00", "SET_SELL_AMOUNT,u,ABC,10.00"]


def test_a_sell_amount_that_rearms_within_the_shares_goes_first():
    existing = SellTrigger("ABC", 15000, 1500, 10)
    assert plan_sell("u", "ABC", 30000, 2000, existing, free_shares=10) == [
        "SET_SELL_AMOUNT,u,ABC,300.00", "SET_SELL_TRIGGER,u,ABC,20.00"]


def test_plan_finds_the_existing_trigger_in_the_summary():
    s = Summary("u", 0, {"ABC": 4}, (), (), (), (SellTrigger("ABC", 15000, 1500, 10),), (), 0)
    assert plan("sell", "u", "ABC", 15000, 1600, s) == ["SET_SELL_TRIGGER,u,ABC,16.00"]
    assert plan("buy", "u", "ABC", 100, 50, s)[0] == "SET_BUY_AMOUNT,u,ABC,1.00"
