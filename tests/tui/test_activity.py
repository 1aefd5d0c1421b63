"""client_tui.model.activity: the Log view's bounded, numbered entries."""

from client_tui.model.activity import ActivityLog, LogFilter


def test_entries_are_numbered_in_order():
    log = ActivityLog()
    log.add(1, "ok", "PING", "{}", latency_ms=0.5)
    log.add(2, "error", "BUY,u,ABC,1", "no money", code="insufficient_funds")
    assert [(e.seq, e.kind, e.code) for e in log] == [(1, "ok", ""),
                                                       (2, "error", "insufficient_funds")]
    assert log.errors == 1


def test_only_the_newest_are_kept():
    log = ActivityLog(kept=3)
    for i in range(5):
        log.add(i, "ok", f"R{i}", "")
    assert [e.request for e in log] == ["R2", "R3", "R4"]
    assert len(log) == 3


def test_the_log_filter_by_kind_and_text():
    log = ActivityLog()
    ok = log.add(1, "ok", "QUOTE,alice,ABC", '{"price":"12.34"}')
    err = log.add(2, "error", "BUY,alice,ABC,100.00", "not enough cash", "insufficient_funds")
    event = log.add(3, "event", "trigger_fired", "Buy trigger fired")
    assert [e for e in log if LogFilter().matches(e)] == [ok, err, event]
    assert [e for e in log if LogFilter("requests").matches(e)] == [ok, err]
    assert [e for e in log if LogFilter("errors").matches(e)] == [err]
    assert [e for e in log if LogFilter(text="abc").matches(e)] == [ok, err]
    assert [e for e in log if LogFilter(text=" INSUFFICIENT ").matches(e)] == [err]
    assert [e for e in log if LogFilter("events", "abc").matches(e)] == []
