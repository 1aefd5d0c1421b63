"""The shipped workloads through the parser and the pure engine (bench.offline.replay).

1user.txt is checked line by line against codes worked out by hand from COMMANDS.md; the larger
workloads against golden counts that catch any change of behaviour.
"""

from collections import Counter

import pytest

from bench.offline import raw_requests, replay, table_price
from bench.workload import shipped

USER = "oY01WVirLr"
OK = "ok"
NPB, NPS = "no_pending_buy", "no_pending_sell"
NBA, NSA = "no_buy_amount", "no_sell_amount"
ATS = "amount_too_small"

# 1user.txt with S at $40.00 and 2 s of virtual time per line: an entry made at line i is alive
# for lines i+1 .. i+29 and gone at line i+30. Shares are amount // 40.00; cash never runs short
# (six ADDs of $45,016.23 and more against buys of at most $750).
EXPECTED_1USER = [
    OK, OK,  # 1 ADD 63511.53; 2 QUOTE
    OK, OK,  # 3 BUY 276.83: 6 shares; 4 COMMIT_BUY: holding 6
    NPS, NPS, OK, OK, NPB, NPB, OK, OK,  # 5-12: nothing pending; 7 QUOTE, 8 ADD, 11 SUMMARY, 12 ADD
    OK, OK, NPB, NPB, NPS, OK,  # 13 BUY 7, 14 COMMIT (13), 15-16 nothing left, 18 ADD
    NPB, NBA, NPS,  # 19 CANCEL_BUY, 20 CANCEL_SET_BUY (no SET_BUY_AMOUNT yet), 21 COMMIT_SELL
    OK, OK, NPS,  # 22 BUY 51.49: 1 share; 23 COMMIT (14)
    OK, OK,  # 25 BUY 156.07: 3; 26 COMMIT (17)
    OK, NPS, OK,  # 27 BUY 575.27: 14 shares, pending until line 57; 29 SUMMARY
    OK,  # 30 SET_BUY_AMOUNT 658.38 on S
    OK, OK,  # 31 SELL 641.90: 17*40.00 >= 641.90, 16 shares (1 left); 32 COMMIT_SELL
    OK,  # 33 COMMIT_BUY takes the BUY of line 27, still alive (15)
    NSA, NPS, NPB, NPS,  # 34 CANCEL_SET_SELL: no sell amount; 35-37 nothing pending
    OK, OK, OK, OK,  # 38 BUY 264.17: 6 (alive until 68); 39 QUOTE; 40 BUY 16; 41 COMMIT 40
    OK, OK, OK, OK, OK, OK, OK,  # 42 SUMMARY; 43 BUY 17; 44 COMMIT; 45 BUY 5; 46 COMMIT; 47; 48
    OK, NSA,  # 49 BUY 433.22: 10; 50 SET_SELL_TRIGGER without SET_SELL_AMOUNT
    OK, OK, OK, OK,  # 51 BUY 9; 52 COMMIT 51; 53 CANCEL 49; 54 COMMIT 38 (alive until 68)
    NPS, OK, NBA,  # 56 CANCEL_SET_BUY releases line 30's 658.38; 57 nothing left to cancel
    OK, OK, OK,  # 58 SUMMARY, 59-60 QUOTE
    OK, NSA,  # 61 SELL 429.74: 10 shares, pending until line 91; 62 no sell amount
    OK, OK, NPB,  # 63 BUY 9; 64 COMMIT; 65 nothing
    OK, OK,  # 66 BUY 8; 67 CANCEL_BUY
    OK, OK,  # 68 SET_SELL_AMOUNT 216.83 (shares held, no trigger price yet); 69 CANCEL_SET_SELL
    OK, OK,  # 70 BUY 12; 71 CANCEL_BUY
    OK, NSA, OK,  # 72 SELL 41.47: 1 share; 73 no sell amount (cancelled at 69); 74 COMMIT 72
    NBA, NSA,  # 75 CANCEL_SET_BUY, 76 CANCEL_SET_SELL: nothing set
    OK, NBA, OK, OK,  # 77 BUY 289.68: 7 (alive until 107); 79 ADD; 80 QUOTE
    OK, OK,  # 81 BUY 8; 82 COMMIT 81
    OK, OK, OK,  # 83 SELL 213.24: 5; 84 BUY 10; 85 CANCEL_SELL takes 83 (61 stays below it)
    OK, OK,  # 86 BUY 18; 87 COMMIT 86
    ATS,  # 88 BUY 36.79 at 40.00 buys no share
    OK,  # 89 COMMIT_BUY takes 84 (88 made nothing)
    OK,  # 90 SELL 644.65: 16
    OK,  # 91 CANCEL_SELL: line 61's SELL has just expired (made 60 s ago); takes 90
    OK,  # 92 COMMIT_BUY takes 77 (alive until 107)
    NSA, NPS, NSA,  # 94 CANCEL_SELL: 90 was cancelled and 61 expired
    OK, OK,  # 96 BUY 18; 97 COMMIT 96
    NPB,  # 98 CANCEL_BUY: 77, 84 and 96 are all settled
    OK,  # 99 SELL 664.10: 16, left pending
    OK,  # 100 DUMPLOG,./testLOG (all users)
]


def test_every_line_of_1user_gets_the_reply_code_worked_out_by_hand():
    lines = list(raw_requests(shipped("1user.txt")))
    assert len(lines) == len(EXPECTED_1USER) == 100
    result = replay(lines, table_price({"S": 4_000}), step_ms=2_000, keep_replies=True)
    codes = [OK if r.ok else str(r.code) for r in result.replies]
    mismatches = [(n, got, want) for n, (got, want) in enumerate(zip(codes, EXPECTED_1USER), 1)
                  if got != want]
    assert mismatches == []
    assert [r.txn for r in result.replies] == list(range(1, 101))


def test_1user_ends_with_the_cash_and_shares_worked_out_by_hand():
    lines = list(raw_requests(shipped("1user.txt"))) + [f"[101] DISPLAY_SUMMARY,{USER}"]
    result = replay(lines, table_price({"S": 4_000}), step_ms=2_000, keep_replies=True)
    summary = result.replies[-1].result
    # added 395,389.55; 154 shares bought for 6,160.00; 17 sold for 680.00; 16 pending sale
    assert summary["cash"] == "389909.55"
    assert summary["holdings"] == {"S": 121}
    assert [(p["txn"], p["shares"], p["price"]) for p in summary["pending_sells"]] == [
        (99, 16, "40.00")]
    assert (summary["pending_buys"], summary["buy_triggers"], summary["sell_triggers"]) == (
        [], [], [])


# Golden figures of the default replay (minute_price, 100 ms per line). Snapshotted from the engine
# after checking the 1user derivation above and these by hand: 10user's one bad_argument is line
# 9962, `ADD,umhaEY4lil,-73280.58`.
GOLDEN = {
    "2user.txt": ({"ok": 6181, "no_pending_sell": 934, "no_pending_buy": 724,
                   "amount_too_small": 693, "no_sell_amount": 649, "no_buy_amount": 636,
                   "insufficient_shares": 155, "no_holding": 28}, 318, 19866, 162),
    "10user.txt": ({"ok": 5188, "no_pending_sell": 1227, "no_sell_amount": 857,
                    "no_buy_amount": 790, "no_pending_buy": 692, "amount_too_small": 539,
                    "insufficient_shares": 539, "no_holding": 167, "bad_argument": 1},
                   692, 20181, 92),
    "45user.txt": ({"ok": 4663, "no_pending_sell": 1255, "no_sell_amount": 965,
                    "no_buy_amount": 903, "no_pending_buy": 876, "insufficient_shares": 620,
                    "amount_too_small": 461, "no_holding": 257}, 1054, 20200, 17),
    "100user.txt": ({"ok": 54461, "no_buy_amount": 10320, "no_sell_amount": 9663,
                     "no_pending_sell": 6195, "insufficient_shares": 6122,
                     "amount_too_small": 4753, "no_holding": 4278, "no_pending_buy": 4208},
                    24887, 205041, 206),
}


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_workload_replay_matches_its_golden_counts(name):
    codes, fetches, events, fired = GOLDEN[name]
    result = replay(raw_requests(shipped(name)))
    assert dict(result.codes) == codes
    assert (result.quote_fetches, result.events, result.triggers_fired) == (fetches, events, fired)
    assert result.commands == sum(codes.values())


def test_every_reply_names_the_command_of_its_line():
    lines = list(raw_requests(shipped("10user.txt")))
    result = replay(lines, keep_replies=True)
    names = Counter(line.split("] ", 1)[1].split(",", 1)[0] for line in lines)
    assert Counter(r.cmd for r in result.replies) == names
