"""Streaming level control: any input level and DC offset reaches the streaming model at one speech level.

The streaming model reads log-mel energies, where the input gain is an offset it learnt only over the range
its training audio had: an unseen speaker at -50 dBFS gave it nothing to hear (no segment, no final),
although the same clips scaled up were read well. This front end brings quiet speech up to :data:`QUIET_DBFS`
before the features, causally (10 ms blocks, no look-ahead past the block being scaled):

- a DC blocker (one-pole high-pass at ~16 Hz) removes an offset;
- the *speech level* follows the loudest recent block at once and falls back slowly (:data:`RELEASE_DB_S`);
- the *noise floor* follows the quietest block at once and rises slowly (:data:`FLOOR_RISE_DB_S`);
- speech quieter than :data:`QUIET_DBFS` is lifted to it, but the noise floor never above
  :data:`NOISE_CEILING_DBFS` (a silent room must not become loud hiss to the model), by at most
  :data:`MAX_GAIN_DB`; speech louder than :data:`LOUD_DBFS` is turned down to it; between them the
  input passes unchanged.

It also says which blocks hold speech by their energy (:attr:`LevelControl.speech`), because the streaming
model does not always answer a soft short word (an unseen speaker's "two" at -50 dBFS gave letter
probabilities of 0.17 at most) that the second pass reads well: the recogniser opens a segment on such blocks
too, and the second pass's no-speech rule drops what was only noise. A block is speech when it stands
:data:`SPEECH_OVER_FLOOR_DB` above a floor of its own and above :data:`SPEECH_MIN_DBFS`. That floor starts
:data:`SPEECH_FLOOR_START_DB` under the stream's first block (a word said at once is not taken for the
floor) and rises faster (:data:`SPEECH_FLOOR_RISE_DB_S`), so a stream that starts in steady noise stops
counting it as speech within a fraction of a second.

Chosen on development clips (FSDD's training speakers at their own level and at -50/-30/-10 dBFS, with the
digit list; LJ Speech training clips), never on the held-out ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.signal import lfilter

from workers.asr.audio import SAMPLE_RATE

BLOCK = SAMPLE_RATE // 100
QUIET_DBFS = -20.0
LOUD_DBFS = -6.0
"""Speech whose loudest recent 10 ms is between these is left as it is (the training audio's speech peaks
sit there: LJ Speech around -9 dBFS, FSDD around -18); quieter speech is lifted to ``QUIET_DBFS``, louder
turned down to ``LOUD_DBFS``. A full AGC to one target flattened every onset and cost the unseen FSDD
speaker at his own level (digits with the digit list 0.896 -> 0.732), for the same gain at -50 dBFS."""
MAX_GAIN_DB = 40.0
NOISE_CEILING_DBFS = -40.0
RELEASE_DB_S = 2.0
FLOOR_RISE_DB_S = 3.0
SPEECH_OVER_FLOOR_DB = 12.0
SPEECH_MIN_DBFS = -70.0
SPEECH_FLOOR_RISE_DB_S = 10.0
SPEECH_FLOOR_START_DB = 9.0
START_LEVEL_DBFS = -60.0
"""The speech level a stream starts from: quiet, so its first soft word is lifted at once (the level jumps
up with the first loud block)."""
_DC = (np.array([1.0, -1.0]), np.array([1.0, -0.994]))


def _db(power: np.ndarray | float) -> np.ndarray | float:
    return 10.0 * np.log10(np.maximum(power, 1e-12))


@dataclass(slots=True)
class LevelControl:
    """One stream's gain state between chunks (see the module docstring)."""

    speech_db: float = START_LEVEL_DBFS
    floor_db: float = 0.0  # no block seen yet: the first block sets it
    dc_state: np.ndarray = field(default_factory=lambda: np.zeros(1))
    gain_db: float = 0.0  # the last block's, for a level meter
    speech_floor_db: float = 0.0  # no block seen yet: the first block sets it
    pending: np.ndarray = field(default_factory=lambda: np.zeros(0))
    speech: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    """Per 10 ms block pushed and not yet taken (:meth:`take_speech`): speech by its energy."""

    def push(self, samples: np.ndarray, end: bool = False) -> np.ndarray:
        """``samples`` (16 kHz float) scaled, in whole 10 ms blocks of the stream: the samples of an
        unfinished block wait for the next chunk (at most 10 ms), so any chunking gives the same output;
        ``end`` flushes them."""
        filtered, self.dc_state = lfilter(*_DC, samples.astype(np.float64), zi=self.dc_state)
        if len(self.pending):
            filtered = np.concatenate([self.pending, filtered])
        usable = len(filtered) if end else len(filtered) - len(filtered) % BLOCK
        self.pending = filtered[usable:]
        filtered = filtered[:usable]
        if not len(filtered):
            return np.zeros(0, np.float32)
        blocks = -(-len(filtered) // BLOCK)
        padded = np.zeros(blocks * BLOCK)
        padded[:len(filtered)] = filtered
        levels = _db(np.mean(padded.reshape(blocks, BLOCK) ** 2, axis=1))
        if len(filtered) % BLOCK:  # the stream's last, short block: its level over its own samples
            levels[-1] = _db(np.mean(filtered[(blocks - 1) * BLOCK:] ** 2))
        release, rise = RELEASE_DB_S / 100, FLOOR_RISE_DB_S / 100
        gains, loud = np.empty(blocks), np.empty(blocks, bool)
        speech_floor = self.speech_floor_db or float(levels[0]) - SPEECH_FLOOR_START_DB
        speech_rise = SPEECH_FLOOR_RISE_DB_S / 100
        speech, floor = self.speech_db, self.floor_db if self.floor_db else float(levels[0])
        for i, level in enumerate(levels.tolist()):
            speech = max(level, speech - release)
            floor = min(level, floor + rise)
            speech_floor = min(level, speech_floor + speech_rise)
            loud[i] = level >= max(speech_floor + SPEECH_OVER_FLOOR_DB, SPEECH_MIN_DBFS)
            if speech < QUIET_DBFS:
                gains[i] = max(0.0, min(QUIET_DBFS - speech, NOISE_CEILING_DBFS - floor, MAX_GAIN_DB))
            elif speech > LOUD_DBFS:
                gains[i] = LOUD_DBFS - speech
            else:
                gains[i] = 0.0
        self.speech_db, self.floor_db, self.gain_db = speech, floor, float(gains[-1])
        self.speech_floor_db = speech_floor
        self.speech = np.concatenate([self.speech, loud])
        scale = np.repeat(10.0 ** (gains / 20.0), BLOCK)[:len(filtered)]
        return np.clip(filtered * scale, -1.0, 1.0).astype(np.float32)

    def take_speech(self, frames: int, blocks_per_frame: int) -> np.ndarray:
        """Per frame of ``blocks_per_frame`` blocks, the next ``frames``: whether any of its blocks is speech
        (blocks not pushed yet, such as the silence fed after a stream's end, are not)."""
        wanted = frames * blocks_per_frame
        taken, self.speech = self.speech[:wanted], self.speech[wanted:]
        if len(taken) < wanted:
            taken = np.concatenate([taken, np.zeros(wanted - len(taken), bool)])
        return taken.reshape(frames, blocks_per_frame).any(axis=1)
