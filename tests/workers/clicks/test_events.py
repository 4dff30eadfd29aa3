import json
from pathlib import Path

import pytest

from workers.clicks.events import Event, event_index, read_events, sessions, split_by_time, write_events


def test_reads_yoochoose_style_tsv(tmp_path: Path) -> None:
    path = tmp_path / "clicks.txt"
    path.write_text("SessionId\tItemId\tTime\n1\t214536502\t1396860669.277\n1\t214536506\t1396860886.998\n2\t7\t1396871797614\n")
    events = read_events(path)
    assert events[0] == Event("1", "214536502", 1396860669.277, "click", None)
    assert events[2].ts == pytest.approx(1396871797.614)  # milliseconds are recognised


def test_reads_csv_with_event_types_and_users(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text("user,session,item,timestamp,type\nu1,s1,a,10,VIEW\nu1,s1,b,11,cart\n")
    assert [(e.user_id, e.event_type) for e in read_events(path)] == [("u1", "view"), ("u1", "cart")]


def test_reads_jsonl_and_round_trips_through_tsv(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    rows = [{"session_id": "s", "item_id": 5, "ts": 2.0, "event_type": "purchase"}, {"session_id": "s", "item_id": "x", "ts": 1}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    events = read_events(path)
    assert events == [Event("s", "5", 2.0, "purchase"), Event("s", "x", 1.0, "click")]
    write_events(events, tmp_path / "out.tsv")
    assert read_events(tmp_path / "out.tsv") == events


def test_a_log_without_the_required_columns_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.tsv"
    path.write_text("SessionId\tTime\n1\t2\n")
    with pytest.raises(ValueError, match="item_id"):
        read_events(path)


def test_sessions_are_time_ordered_and_split_by_start_time() -> None:
    events = [Event("late", "a", 50), Event("early", "b", 3), Event("early", "a", 1), Event("mid", "c", 20), Event("mid", "d", 20)]
    grouped = sessions(events)
    assert [e.item_id for e in grouped["early"]] == ["a", "b"]
    assert [e.item_id for e in grouped["mid"]] == ["c", "d"]  # ties keep file order
    train, test = split_by_time(grouped, 1 / 3)
    assert list(train) == ["early", "mid"] and list(test) == ["late"]


def test_event_types_have_stable_indices() -> None:
    assert [event_index(t) for t in ("click", "view", "cart", "purchase", "refund")] == [1, 2, 3, 4, 0]
