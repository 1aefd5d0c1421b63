"""client_tui.model.activity: the Log view's bounded, numbered entries."""

from client_tui.model.activity import ActivityLog


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
