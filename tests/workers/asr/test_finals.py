"""The finals' beam-search pool: same answers as the in-loop search, and no orphans."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from models import ARTIFACTS
from workers.asr.finals import FinalsPool, SearchSettings
from workers.asr.lm import CharLM, beam_search
from workers.asr.text import ALPHABET

REPO = Path(__file__).resolve().parents[3]
LM = ARTIFACTS / "asr" / "lm.txt.gz"
SETTINGS = SearchSettings(beam=8, lm_weight=0.8, lm_bonus=1.5, prune=-6.0)


def lattice(text: str) -> np.ndarray:
    """Log-probabilities that spell ``text``, one character per 3 frames with blanks between."""
    rows = []
    for char in text:
        for token in (ALPHABET.index(char) + 1, 0, 0):
            row = np.full(len(ALPHABET) + 1, -9.0, np.float32)
            row[token] = -0.05
            rows.append(row)
    return np.stack(rows).astype(np.float16)


def test_the_pool_finds_what_the_in_process_search_finds() -> None:
    lm = CharLM.load(LM)
    lattices = [lattice("the bank"), lattice("my card")]
    pool = FinalsPool(LM, 1, SETTINGS)
    try:
        found, seconds = pool.search(lattices).result(timeout=60)
    finally:
        pool.close()
    want = [beam_search(lp.astype(np.float32), lm, 8, 0.8, 1.5, -6.0) for lp in lattices]
    assert [(f.text, f.frames) for f in found] == want and found[0].text == "the bank"
    assert seconds > 0


def children_of(pid: int) -> list[str]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()  # after "(command name)": state, ppid, ...
        except (FileNotFoundError, IndexError):
            continue
        if fields[1] == str(pid):
            found.append(stat.parent.name)
    return found


def test_a_pool_child_exits_when_its_worker_is_killed() -> None:
    code = (f"from pathlib import Path\nfrom workers.asr.finals import FinalsPool, SearchSettings\n"
            f"pool = FinalsPool(Path({str(LM)!r}), 1, SearchSettings(8, 0.8, 1.5, -6.0))\n"
            "pool.warmup()\nprint('ready', flush=True)\nimport time\ntime.sleep(120)\n")
    parent = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None and parent.stdout.readline().strip() == "ready"
        children = children_of(parent.pid)
        assert children
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()

    def running(pid: str) -> bool:
        try:
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except FileNotFoundError:
            return False

    deadline = time.monotonic() + 10
    while any(running(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = [pid for pid in children if running(pid)]
    for pid in left:
        os.kill(int(pid), signal.SIGKILL)
    assert not left, f"pool processes outlived their worker: {left}"
