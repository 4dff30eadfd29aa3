from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import pytest

from workers.toolkit.snapshot import SnapshotCodec


class Point(NamedTuple):
    x: float
    y: float


@dataclass(slots=True, frozen=True)
class Frozen:
    name: str


@dataclass(slots=True)
class Inner:
    cache: dict[str, np.ndarray] = field(default_factory=dict)
    points: list[Point] = field(default_factory=list)


class Plain:
    def __init__(self) -> None:
        self.inner = Inner({"h": np.arange(6, dtype=np.float32).reshape(2, 3) / 7}, [Point(0.1, 1e-300)])
        self.last = np.float32(0.3)
        self.pair = (1, "two", None)
        self.counts = {3: 1.5, "k": [True, float("inf")]}
        self.raw = b"\x00\xff"
        self.tag = Frozen("a")


def test_state_comes_back_bit_for_bit() -> None:
    codec = SnapshotCodec(Plain, Inner, Point, Frozen)
    back = codec.decode(codec.encode(Plain()))
    original = Plain()
    assert back.inner.cache["h"].tobytes() == original.inner.cache["h"].tobytes()
    assert back.inner.cache["h"].flags.writeable and back.inner.cache["h"].shape == (2, 3)
    assert back.inner.points == [Point(0.1, 1e-300)] and isinstance(back.inner.points[0], Point)
    assert back.last == np.float32(0.3) and back.last.dtype == np.float32
    assert back.pair == (1, "two", None) and back.counts == {3: 1.5, "k": [True, float("inf")]}
    assert back.raw == b"\x00\xff" and back.tag == Frozen("a")


def test_only_the_named_classes_are_written_or_built() -> None:
    with pytest.raises(TypeError, match="not among the classes"):
        SnapshotCodec(Plain, Inner, Point).encode(Plain())  # Frozen not named
    data = SnapshotCodec(Plain, Inner, Point, Frozen).encode(Plain())
    with pytest.raises(ValueError, match="not one this codec may build"):
        SnapshotCodec(Inner, Point, Frozen).decode(data)


class Unwritable:
    """Stands for what a snapshot must not hold: an object of no named class."""


@dataclass(slots=True)
class WithDerived:
    __snapshot_exclude__ = ("derived",)

    kept: list[int] = field(default_factory=list)
    derived: object | None = None


def test_excluded_attributes_are_not_written_and_come_back_as_none() -> None:
    codec = SnapshotCodec(WithDerived)
    back = codec.decode(codec.encode(WithDerived([1, 2], Unwritable())))
    assert back.kept == [1, 2]
    assert back.derived is None


@dataclass(slots=True)
class Older:
    kept: int = 0


@dataclass(slots=True)
class Newer:
    """``Older`` with two fields added since (a snapshot written by the older code meets the newer)."""

    kept: int = 0
    flag: bool = True
    flags: list[bool] = field(default_factory=lambda: [False])


def test_a_field_added_after_the_snapshot_was_written_comes_back_as_its_default() -> None:
    data = SnapshotCodec(Older).encode(Older(7)).replace(b'.Older"', b'.Newer"')  # names of one length
    back = SnapshotCodec(Newer).decode(data)
    assert (back.kept, back.flag, back.flags) == (7, True, [False])
