from workers.engine.offsets import OffsetTracker
from workers.transport.records import TopicPartition

TP = TopicPartition("t", 0)


def test_commits_only_the_contiguous_done_prefix() -> None:
    tracker = OffsetTracker()
    for offset in (10, 11, 12):
        tracker.track(TP, offset)
    tracker.done(TP, 12)
    tracker.done(TP, 11)
    assert tracker.take_committable() == {}  # 10 still unfinished: committing 13 would lose it
    tracker.done(TP, 10)
    assert tracker.take_committable() == {TP: 13}
    assert tracker.in_flight == 0


def test_each_commit_is_handed_out_once_and_gaps_in_offsets_are_fine() -> None:
    tracker = OffsetTracker()
    tracker.track(TP, 5)
    tracker.track(TP, 9)  # compacted topics skip offsets
    tracker.done(TP, 5)
    assert tracker.take_committable() == {TP: 6}
    assert tracker.take_committable() == {}
    tracker.done(TP, 9)
    assert tracker.take_committable() == {TP: 10}


def test_failed_commit_is_restored_but_never_moves_backwards() -> None:
    tracker = OffsetTracker()
    for offset in range(3):
        tracker.track(TP, offset)
    tracker.done(TP, 0)
    first = tracker.take_committable()
    tracker.done(TP, 1)
    tracker.restore(first)
    assert tracker.take_committable() == {TP: 2}


def test_forget_drops_revoked_partitions_and_their_in_flight_count() -> None:
    tracker = OffsetTracker()
    other = TopicPartition("t", 1)
    tracker.track(TP, 0)
    tracker.track(other, 0)
    tracker.forget({TP})
    assert tracker.in_flight == 1
    tracker.done(TP, 0)  # late acknowledgement for a partition we no longer own: ignored
    assert tracker.take_committable() == {}


def test_an_offset_tracked_twice_counts_once_and_still_commits() -> None:
    tracker = OffsetTracker()
    tracker.track(TP, 0)
    tracker.track(TP, 1)
    tracker.track(TP, 1)  # a client that hands a record over twice
    assert tracker.in_flight == 2
    tracker.done(TP, 1)
    tracker.done(TP, 0)
    assert tracker.take_committable() == {TP: 2}
    assert tracker.in_flight == 0
    tracker.track(TP, 2)
    tracker.done(TP, 2)
    assert tracker.take_committable() == {TP: 3}
