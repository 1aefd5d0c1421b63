"""client_tui.model.history: transactions merged from pages, filtered, exported as CSV."""

import csv
import io

from client_tui.model.history import HistoryFilter, TransactionLog, filtered, to_csv
from client_tui.model.summary import Transaction


def tx(txn, time, kind="add", symbol=None, shares=0, price=None, delta=100):
    return Transaction(txn, time, kind, symbol, shares, price, delta)


def test_merging_a_page_counts_only_new_transactions():
    log = TransactionLog()
    assert log.merge([tx(2, 20), tx(1, 10)], total=2) == 2
    assert log.merge([tx(3, 30), tx(2, 20)], total=3) == 1
    assert [t.txn for t in log.records] == [3, 2, 1]


def test_an_older_page_goes_after_the_known_ones():
    log = TransactionLog()
    log.merge([tx(4, 40), tx(3, 30)], total=4)
    log.merge([tx(2, 20), tx(1, 10)])
    assert [t.txn for t in log.records] == [4, 3, 2, 1]
    assert log.chronological()[0].txn == 1


def test_records_are_newest_first_by_time_even_when_txns_are_not_ordered():
    # A trigger fill gets a server txn (10001) from another range than the user's commands.
    log = TransactionLog()
    log.merge([tx(21, 300), tx(10001, 200), tx(19, 100)], total=3)
    assert [t.txn for t in log.records] == [21, 10001, 19]


def test_records_of_one_millisecond_keep_the_servers_order():
    log = TransactionLog()
    log.merge([tx(5, 50, "trigger_reserve"), tx(5, 50, "trigger_release")], total=2)
    assert [t.kind for t in log.records] == ["trigger_reserve", "trigger_release"]


def test_complete_when_every_counted_transaction_is_loaded():
    log = TransactionLog()
    log.merge([tx(3, 30), tx(2, 20)], total=2)
    assert log.complete
    log.merge([], total=5)
    assert not log.complete


def test_oldest_txn_of_a_page_asks_for_the_next_older_page():
    assert TransactionLog().oldest_txn([tx(9, 90), tx(4, 40), tx(7, 70)]) == 4
    assert TransactionLog().oldest_txn([]) is None


def test_filter_by_symbol_is_case_insensitive():
    rows = [tx(1, 1, "buy_commit", "ABC"), tx(2, 2, "buy_commit", "XYZ"), tx(3, 3)]
    assert [t.txn for t in filtered(rows, HistoryFilter(symbol="abc"))] == [1]


def test_filter_by_kind_group():
    rows = [tx(1, 1, "buy_reserve", "ABC"), tx(2, 2, "sell_commit", "ABC"),
            tx(3, 3, "trigger_fill", "ABC"), tx(4, 4)]
    assert [t.txn for t in filtered(rows, HistoryFilter(kind="buy"))] == [1]
    assert [t.txn for t in filtered(rows, HistoryFilter(kind="fills"))] == [2, 3]
    assert [t.txn for t in filtered(rows, HistoryFilter(kind="add"))] == [4]
    assert len(filtered(rows, HistoryFilter())) == 4


def test_csv_has_a_header_and_dollars_with_two_decimals():
    text = to_csv([tx(3, 1_764_072_000_123, "buy_reserve", "ABC", 8, 1234, -9872),
                   tx(1, 1_764_072_000_000, "add", None, 0, None, 100000)])
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["txn", "time_utc", "kind", "symbol", "shares", "price", "cash_delta"]
    assert rows[1] == ["3", "2025-11-25T12:00:00.123Z", "buy_reserve", "ABC", "8", "12.34",
                       "-98.72"]
    assert rows[2] == ["1", "2025-11-25T12:00:00.000Z", "add", "", "0", "", "1000.00"]
