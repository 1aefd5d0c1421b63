"""client_tui.model.watchlist: the watchlist file per user, in the XDG data directory."""

from pathlib import Path

from client_tui.model.store import AccountStore
from client_tui.model.summary import PendingOrder, SellTrigger, Summary
from client_tui.model.watchlist import default_data_dir, load, merged, save, watchlist_path


def test_the_data_dir_follows_xdg_and_falls_back_to_local_share():
    assert default_data_dir({"XDG_DATA_HOME": "/x/data"}) == Path("/x/data/daytrade")
    home = Path.home() / ".local" / "share" / "daytrade"
    assert default_data_dir({}) == home
    assert default_data_dir({"XDG_DATA_HOME": "relative"}) == home  # the spec ignores it


def test_one_file_per_user(tmp_path):
    assert watchlist_path(tmp_path, "alice") == tmp_path / "watchlist-alice.json"
    assert watchlist_path(tmp_path, "../x") == tmp_path / "watchlist-.._x.json"


def test_save_then_load_round_trips_in_order(tmp_path):
    path = tmp_path / "deep" / "watchlist-alice.json"
    save(path, ["QRS", "ABC"])
    assert load(path) == ["QRS", "ABC"]
    assert not list(path.parent.glob("*.tmp"))


def test_a_missing_or_damaged_file_is_an_empty_watchlist(tmp_path):
    assert load(tmp_path / "none.json") == []
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert load(bad) == []
    bad.write_text('{"symbols": ["ABC", 3, "lower", "TOOLONG", "ABC", "XYZ"]}')
    assert load(bad) == ["ABC", "XYZ"]


def test_merged_keeps_first_seen_order():
    assert merged(["B", "A"], ["A", "C"], ["B", "D"]) == ["B", "A", "C", "D"]


def test_owned_symbols_join_the_watchlist_and_stay_while_owned():
    store = AccountStore("alice")
    store.watch("XYZ")
    summary = Summary("alice", 0, {"ABC": 3}, (),
                      (PendingOrder("sell", 1, "DEF", 2, 4567, 0),), (),
                      (SellTrigger("QRS", 100, 150, 1),), (), 0)
    store.apply_summary(summary)
    assert store.watchlist == ["XYZ", "ABC", "DEF", "QRS"]
    assert store.owned() == {"ABC": 3, "DEF": 2, "QRS": 1}
    assert not store.unwatch("ABC") and "ABC" in store.watchlist
    assert store.unwatch("XYZ") and store.watchlist == ["ABC", "DEF", "QRS"]
