from pathlib import Path

from workers.clicks.baseline import SuccessorBaseline
from workers.clicks.events import Event
from workers.clicks.scorers import load_scorer


def session(sid: str, *items: str) -> list[Event]:
    return [Event(sid, item, float(t)) for t, item in enumerate(items)]


TRAIN = {"1": session("1", "a", "b", "c"), "2": session("2", "a", "b"), "3": session("3", "a", "c", "d", "d")}


def test_most_frequent_successor_first_then_popularity_fill() -> None:
    baseline = SuccessorBaseline.fit(TRAIN)
    state = baseline.new_state()
    [prediction] = baseline.step([state], [Event("x", "a", 0)], k=4)
    assert [item for item, _ in prediction.next_items] == ["b", "c", "a", "d"]  # b twice, c once, then popular a, d
    assert prediction.next_items[0][1] > prediction.next_items[1][1] > prediction.next_items[2][1]
    assert state == ["a"] and prediction.known_item and prediction.purchase_probability is None
    [unknown] = baseline.step([state], [Event("x", "zzz", 1)], k=2)
    assert not unknown.known_item and [item for item, _ in unknown.next_items] == ["a", "b"]


def test_saved_baseline_is_loaded_back_as_a_scorer(tmp_path: Path) -> None:
    SuccessorBaseline.fit(TRAIN, version="v1").save(tmp_path, {"hr@20": 1.0})
    scorer = load_scorer(tmp_path)
    assert isinstance(scorer, SuccessorBaseline) and scorer.version == "v1"
    assert scorer.step([scorer.new_state()], [Event("x", "c", 0)], k=1)[0].next_items == [("d", 1.0)]
