from workers.engine.state import KeyedState


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_idle_keys_expire_and_are_reported() -> None:
    clock, evicted = Clock(), []
    state: KeyedState[list[int]] = KeyedState(list, ttl_s=10, max_keys=100, clock=clock,
                                              on_evict=lambda reason, n: evicted.append((reason, n)))
    state.get("a", 0).append(1)
    clock.now = 5
    state.get("b", 0)
    clock.now = 12
    assert [key for key, _ in state.expire()] == ["a"]
    assert "a" not in state and "b" in state
    assert evicted == [("ttl", 1)]


def test_cap_evicts_least_recently_used() -> None:
    evicted = []
    state: KeyedState[dict[str, int]] = KeyedState(dict, ttl_s=60, max_keys=2,
                                                   on_evict=lambda reason, n: evicted.append(reason))
    state.get("a", 0)
    state.get("b", 0)
    state.get("a", 0)  # a is now the most recent
    state.get("c", 0)
    assert "b" not in state and "a" in state and "c" in state
    assert evicted == ["capacity"]


def test_drop_partitions_forgets_only_their_keys() -> None:
    state: KeyedState[int] = KeyedState(int, ttl_s=60, max_keys=10)
    state.get("x", 0)
    state.get("y", 1)
    assert state.drop_partitions({1}) == 1
    assert "x" in state and "y" not in state


def test_restored_keys_keep_their_age_their_offset_and_the_cap() -> None:
    clock, removed = Clock(), []
    clock.now = 100.0
    state: KeyedState[str] = KeyedState(str, ttl_s=30, max_keys=3, clock=clock)
    state.on_removed = lambda key, partition, offset: removed.append(key)
    state.get("live", 1)
    state.restore([("old", 0, "o", 7, 20.0), ("older", 0, "x", 3, 25.0), ("newer", 2, "n", 9, 1.0)])
    assert removed == ["older"]  # over the cap: the least recently used goes (and is deleted from the changelog)
    assert state.reflects("old", 7) and state.reflects("old", 6) and not state.reflects("old", 8)
    assert state.applied("newer", 10) == ("n", 2) and state.reflects("newer", 10)
    clock.now = 111.0  # "old" was last touched 31 s ago
    assert [key for key, _ in state.expire()] == ["old"]
