"""The finals' beam-search pool: same answers as the in-loop search, and no orphans."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from models import ARTIFACTS
from workers.asr.audio import SAMPLE_RATE, read_wav, resample
from workers.asr.finals import FinalsPool
from workers.asr.lm import LanguageModels, SearchSettings
from workers.asr.recognizer import Owed
from workers.asr.text import ALPHABET
from workers.asr.settings import AsrSettings
from workers.asr.whisper import Whisper
from workers.settings import OnnxSettings

REPO = Path(__file__).resolve().parents[3]
MODEL = ARTIFACTS / "asr"
SETTINGS = SearchSettings.of(AsrSettings())


def lattice(text: str) -> np.ndarray:
    """Log-probabilities that spell ``text``, one character per 3 frames with blanks between."""
    rows = []
    for char in text:
        for token in (ALPHABET.index(char) + 1, 0, 0):
            row = np.full(len(ALPHABET) + 1, -9.0, np.float32)
            row[token] = -0.05
            rows.append(row)
    return np.stack(rows).astype(np.float16)


def searches(lattices: list[np.ndarray]) -> list[Owed]:
    return [Owed(lp, None, None) for lp in lattices]


def test_the_pool_finds_what_the_in_process_search_finds() -> None:
    lms = LanguageModels.load(MODEL)
    assert lms is not None and lms.words is not None
    lattices = [lattice("the bank"), lattice("my card")]
    pool = FinalsPool(MODEL, 1, SETTINGS)
    try:
        done = pool.search(searches(lattices)).result(timeout=60)
    finally:
        pool.close()
    assert done.found == [lms.search(lp, SETTINGS) for lp in lattices] and done.found[0].text == "the bank"
    assert done.seconds > 0 and done.beam == SETTINGS.beam


def test_a_backlogged_pool_searches_narrower_until_it_catches_up() -> None:
    long = [lattice("the bank is open " * 20)]  # ~1,000 frames: each search takes a while
    pool = FinalsPool(MODEL, 1, SETTINGS, busy_beam=4, backlog=2)
    try:
        pool.warmup()
        burst = [pool.search(searches(long)) for _ in range(5)]
        beams = [future.result(timeout=120).beam for future in burst]
        after = pool.search(searches(long)).result(timeout=60).beam
    finally:
        pool.close()
    assert beams == [SETTINGS.beam, SETTINGS.beam, 4, 4, 4] and after == SETTINGS.beam


def test_a_cancelled_waiting_final_leaves_the_backlog_at_once() -> None:
    very_long = [lattice("the bank is open " * 100)]  # ~5,000 frames: the one process stays busy for seconds
    pool = FinalsPool(MODEL, 1, SETTINGS, busy_beam=4, backlog=2)
    try:
        pool.warmup()
        running = pool.search(searches(very_long))
        waiting = pool.search(searches([lattice("my card")]))
        assert pool.busy
        assert waiting.cancel()
        assert not pool.busy  # not only once the process is free and takes it out of the queue
        after = pool.search(searches([lattice("my card")]))
        assert not running.done()
        assert after.result(timeout=120).beam == SETTINGS.beam and running.result(timeout=120).beam == SETTINGS.beam
    finally:
        pool.close()


def test_waiting_finals_with_one_window_share_a_call_and_read_as_they_do_alone() -> None:
    speech = np.concatenate([resample(*read_wav(REPO / "workers" / "asr" / "samples" / name), SAMPLE_RATE)
                             for name in ("LJ001-0006.wav", "librivox-0880.wav")])  # 8.7 s: an 11.7 s window
    short = [speech[: int(SAMPLE_RATE * s)] for s in (1, 1.5, 2, 3, 4)]  # each gets the 7 s window
    clips = [*short[:2], speech, *short[2:]]  # a final with another window waits between them
    pool = FinalsPool(MODEL, 1, SETTINGS, batch=4)
    try:
        pool.warmup()
        first = pool.search([Owed(None, None, speech)])  # the one process is busy with it
        waiting = [pool.search([Owed(None, None, clip)]) for clip in clips]
        dropped = pool.search([Owed(None, None, short[0])])
        assert dropped.cancel()  # still waiting: cancelled, it is never read
        done = [future.result(timeout=120) for future in [first, *waiting]]
    finally:
        pool.close()
    # the oldest waiting final and three more of its window, past the one of another; then the rest alone
    assert [d.shared for d in done] == [1, 4, 4, 1, 4, 4, 1]
    whisper = Whisper(MODEL / "whisper", OnnxSettings(intra_op_num_threads=1))
    alone = [whisper.transcribe([clip])[0] for clip in clips]
    assert [d.found[0].tokens for d in done[1:]] == [d.tokens for d in alone]
    assert [d.found[0].probabilities for d in done[1:]] == [d.probabilities for d in alone]


def stat_fields(pid: str) -> list[str]:
    """/proc/<pid>/stat after "(command name)": state, ppid, ... (index 16: the niceness)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def children_of(pid: int) -> list[str]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_fields(stat.parent.name)
        except (FileNotFoundError, IndexError):
            continue
        if fields[1] == str(pid):
            found.append(stat.parent.name)
    return found


def test_a_pool_child_exits_when_its_worker_is_killed() -> None:
    code = (f"from pathlib import Path\nfrom workers.asr.finals import FinalsPool\n"
            "from workers.asr.lm import SearchSettings\nfrom workers.asr.settings import AsrSettings\n"
            f"pool = FinalsPool(Path({str(MODEL)!r}), 1, SearchSettings.of(AsrSettings()))\n"
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
            return stat_fields(pid)[0] != "Z"
        except FileNotFoundError:
            return False

    deadline = time.monotonic() + 10
    while any(running(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = [pid for pid in children if running(pid)]
    for pid in left:
        os.kill(int(pid), signal.SIGKILL)
    assert not left, f"pool processes outlived their worker: {left}"


def test_a_niced_pool_searches_at_a_lower_priority_than_its_worker() -> None:
    """``search_nice``: where the batch loop and the searches want the same CPU, the partials get it first."""
    pool = FinalsPool(MODEL, 1, SETTINGS, nice=5)
    try:
        pool.warmup()
        children = children_of(os.getpid())
        niceness = {pid: int(stat_fields(pid)[16]) for pid in children}
    finally:
        pool.close()
    assert os.nice(0) + 5 in niceness.values(), niceness  # the search process (the others: the resource tracker)
