"""The event-log format every clicks command reads: TSV/CSV with a header, or JSON lines.

Columns (case-insensitive aliases in brackets)::

    session_id [SessionId, session]   item_id [ItemId, item]   ts [Time, timestamp]
    event_type [EventType, event, type]  (optional: view | click | cart | purchase; default click)
    user_id [UserId, user]             (optional)

YOOCHOOSE/session-rec files (``SessionId<TAB>ItemId<TAB>Time``) read as they are. Within a session,
events are ordered by time; ties keep file order.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

EVENT_TYPES = ("click", "view", "cart", "purchase")
"""Known event types; their index + 1 is the model's event id (0 = unknown)."""
PURCHASE = "purchase"

_ALIASES = {
    "session_id": ("session_id", "sessionid", "session"),
    "item_id": ("item_id", "itemid", "item"),
    "ts": ("ts", "time", "timestamp"),
    "event_type": ("event_type", "eventtype", "event", "type"),
    "user_id": ("user_id", "userid", "user"),
}


@dataclass(frozen=True, slots=True)
class Event:
    session_id: str
    item_id: str
    ts: float
    event_type: str = "click"
    user_id: str | None = None


def event_index(event_type: str) -> int:
    """The model's id of an event type: 1.. for known types, 0 for anything else."""
    try:
        return EVENT_TYPES.index(event_type) + 1
    except ValueError:
        return 0


def _columns(header: list[str]) -> dict[str, int]:
    lowered = [h.strip().lower() for h in header]
    found = {}
    for field, names in _ALIASES.items():
        for name in names:
            if name in lowered:
                found[field] = lowered.index(name)
                break
    missing = [f for f in ("session_id", "item_id", "ts") if f not in found]
    if missing:
        raise ValueError(f"event log header {header} lacks {missing} (see workers/clicks/events.py for aliases)")
    return found


def _parse_ts(value: str | float | int) -> float:
    ts = float(value)
    return ts / 1000 if ts > 1e11 else ts


def read_events(path: str | Path) -> list[Event]:
    """All events of a log file, in file order."""
    path = Path(path)
    with path.open(encoding="utf-8") as f:
        first = f.readline()
        f.seek(0)
        if first.lstrip().startswith("{"):
            return list(_read_jsonl(f, path))
        delimiter = "\t" if "\t" in first else (";" if ";" in first else ",")
        rows = csv.reader(f, delimiter=delimiter)
        cols = _columns(next(rows))
        events = []
        for n, row in enumerate(rows, start=2):
            if not row:
                continue
            try:
                events.append(Event(
                    session_id=row[cols["session_id"]],
                    item_id=row[cols["item_id"]],
                    ts=_parse_ts(row[cols["ts"]]),
                    event_type=row[cols["event_type"]].strip().lower() if "event_type" in cols else "click",
                    user_id=(row[cols["user_id"]] or None) if "user_id" in cols else None,
                ))
            except (IndexError, ValueError) as exc:
                raise ValueError(f"{path}:{n}: {exc}") from None
        return events


def _read_jsonl(lines: Iterable[str], path: Path) -> Iterator[Event]:
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            yield Event(str(row["session_id"]), str(row["item_id"]), _parse_ts(row["ts"]),
                        str(row.get("event_type", "click")).lower(),
                        None if row.get("user_id") is None else str(row["user_id"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}:{n}: {exc!r}") from None


def write_events(events: Iterable[Event], path: str | Path) -> int:
    """Write a TSV log (the format :func:`read_events` reads first)."""
    n = 0
    with Path(path).open("w", encoding="utf-8") as f:
        f.write("session_id\titem_id\tts\tevent_type\tuser_id\n")
        for e in events:
            f.write(f"{e.session_id}\t{e.item_id}\t{e.ts:.3f}\t{e.event_type}\t{e.user_id or ''}\n")
            n += 1
    return n


def to_json(event: Event) -> dict[str, object]:
    """The worker's wire form of an event (``clicks.events``)."""
    payload = asdict(event)
    if payload["user_id"] is None:
        del payload["user_id"]
    return payload


def sessions(events: Iterable[Event]) -> dict[str, list[Event]]:
    """Events grouped by session, each session in time order (stable for ties), sessions in first-seen order."""
    grouped: dict[str, list[Event]] = defaultdict(list)
    for e in events:
        grouped[e.session_id].append(e)
    return {sid: sorted(evs, key=lambda e: e.ts) for sid, evs in grouped.items()}


def split_by_time(grouped: dict[str, list[Event]], test_fraction: float) -> tuple[dict[str, list[Event]], dict[str, list[Event]]]:
    """Train/test split of sessions: the sessions that start last (``test_fraction`` of them) are the test set,
    as in the YOOCHOOSE protocol; the model never sees the future."""
    ordered = sorted(grouped, key=lambda sid: (grouped[sid][0].ts, sid))
    cut = int(round(len(ordered) * (1 - test_fraction)))
    return ({sid: grouped[sid] for sid in ordered[:cut]}, {sid: grouped[sid] for sid in ordered[cut:]})


def purchase_after(events: list[Event]) -> list[bool]:
    """For each position, whether a purchase happens strictly later in the session."""
    later, flags = False, []
    for event in reversed(events):
        flags.append(later)
        later = later or event.event_type == PURCHASE
    return flags[::-1]
