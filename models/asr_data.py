"""Training and evaluation speech for the ASR model: real clips from ``../shared/data/asr`` plus synthetic
speech from the Debian TTS engines (espeak-ng, flite), with speed, gain and noise augmentation.

Held out, never trained on (and kept out of the TTS text and the language model):
- every sixth LJ Speech clip (``LJ001-0006``, ``-0012``, ...);
- every FSDD clip of the speaker ``jackson``;
- the pocketsphinx LibriVox and "cards" clips (a different reader, a different book).
"""

from __future__ import annotations

import hashlib
import json
import pickle
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing import Pool
from pathlib import Path
from typing import Any

import numpy as np

from workers.asr.audio import SAMPLE_RATE, features, read_wav, resample
from workers.asr.text import normalize

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
ASR_DATA = DATA / "asr"
EVAL_CACHE = Path(__file__).resolve().parents[1] / ".cache" / "asr" / "eval"
FSDD_HELD_OUT_SPEAKER = "jackson"
DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
ESPEAK_VOICES = ["en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-029", "en-us-nyc"]
ESPEAK_VARIANTS = ["", "+m1", "+m2", "+m3", "+m4", "+m5", "+m6", "+m7", "+f1", "+f2", "+f3", "+f4", "+f5",
                   "+klatt", "+klatt2", "+klatt3", "+Andy", "+annie", "+belinda", "+david", "+linda", "+paul"]
FLITE_VOICES = ["slt", "awb", "rms", "kal16", "kal"]


@dataclass(frozen=True)
class Clip:
    """One utterance: a file (or ``tts:`` text), its reference text, and a group for reporting."""

    path: str
    text: str
    group: str


def lj_clips() -> tuple[list[Clip], list[Clip]]:
    """(train, held out) LJ Speech clips present in the shared copy; every sixth clip is held out."""
    texts = {}
    for line in (ASR_DATA / "ljspeech" / "metadata.csv").read_text(encoding="utf-8").splitlines():
        clip_id, _, normalized = line.split("|")
        texts[clip_id] = normalize(normalized)
    train, held_out = [], []
    for wav in sorted((ASR_DATA / "ljspeech" / "wavs").glob("*.wav")):
        number = int(wav.stem.split("-")[1])
        (held_out if number % 6 == 0 else train).append(Clip(str(wav), texts[wav.stem], "ljspeech"))
    return train, held_out


def lj_text_corpus(exclude: set[str]) -> list[str]:
    """Every LJ Speech transcript (13,100 lines, public domain) except ``exclude``: TTS text and LM text."""
    lines = []
    for line in (ASR_DATA / "ljspeech" / "metadata.csv").read_text(encoding="utf-8").splitlines():
        text = normalize(line.split("|")[2])
        if text and text not in exclude:
            lines.append(text)
    return lines


def fsdd_clips() -> tuple[list[Clip], list[Clip]]:
    """(train speakers, held-out speaker) spoken digits."""
    train, held_out = [], []
    for wav in sorted((ASR_DATA / "fsdd" / "recordings").glob("*.wav")):
        digit, speaker, _ = wav.stem.split("_")
        clip = Clip(str(wav), DIGITS[int(digit)], f"fsdd-{speaker}")
        (held_out if speaker == FSDD_HELD_OUT_SPEAKER else train).append(clip)
    return train, held_out


def pocketsphinx_clips() -> list[Clip]:
    """The LibriVox and cards clips with their sphinx-format references (``<s> text </s> (id)``)."""
    clips = []
    for folder, listing in (("librivox", "transcription"), ("cards", "cards.transcription")):
        base = ASR_DATA / "pocketsphinx" / folder
        wavs = sorted(base.glob("*.wav"))
        refs = [line.strip() for line in (base / listing).read_text().splitlines() if line.strip()]
        for wav, ref in zip(wavs, refs, strict=True):
            text = ref.replace("<s>", "").replace("</s>", "").rsplit("(", 1)[0]
            clips.append(Clip(str(wav), normalize(text), f"pocketsphinx-{folder}"))
    return clips


def bot_texts() -> list[str]:
    """Banking77 and CLINC150 training utterances without digits (a spoken digit has no spelling here)."""
    import csv

    texts = []
    with open(DATA / "bot" / "banking77" / "train.csv", newline="", encoding="utf-8") as f:
        texts += [row["text"] for row in csv.DictReader(f)]
    clinc = json.loads((DATA / "bot" / "clinc150" / "data_full_no_test.json").read_text())
    texts += [text for text, _ in clinc["train"]]
    return [normalize(t) for t in texts if not any(ch.isdigit() for ch in t) and normalize(t)]


def synthesize(text: str, voice: str, speed: float, pitch: int) -> tuple[np.ndarray, int]:
    """Speech for ``text`` from espeak-ng (``espeak:<voice>``) or flite (``flite:<voice>``)."""
    engine, _, name = voice.partition(":")
    with tempfile.NamedTemporaryFile(suffix=".wav") as out:
        if engine == "espeak":
            cmd = ["espeak-ng", "-v", name, "-s", str(int(165 * speed)), "-p", str(pitch), "-w", out.name, text]
        else:
            cmd = ["flite", "-voice", name, "--setf", f"duration_stretch={1 / speed:.2f}", "-t", text, "-o", out.name]
        subprocess.run(cmd, check=True, capture_output=True, timeout=60)
        return read_wav(out.name)


def require_tts() -> None:
    missing = [tool for tool in ("espeak-ng", "flite") if shutil.which(tool) is None]
    if missing:
        raise SystemExit(f"training speech needs {' and '.join(missing)}: apt-get install espeak-ng flite")


def _augment(audio: np.ndarray, rate: int, speed: float, snr_db: float | None, rng: np.random.Generator,
             pad_s: tuple[float, float] = (0.0, 0.0), floor_db: float | None = None) -> np.ndarray:
    """Speed (and pitch) by relabelling the rate, a random gain, ``pad_s`` (lead, trail) seconds of silence at
    ``floor_db`` dBFS (None: digital zeros), optional white noise at ``snr_db`` over the speech's power."""
    audio = resample(audio, max(1000, int(round(rate * speed))))
    peak = float(np.abs(audio).max()) or 1.0
    audio = audio / peak * rng.uniform(0.2, 0.95)
    power = float(np.mean(audio ** 2)) or 1e-8
    if any(pad_s):
        lead, trail = (np.zeros(int(s * 16_000), np.float32) for s in pad_s)
        audio = np.concatenate([lead, audio, trail])
        if floor_db is not None:
            audio = audio + rng.normal(0, 10 ** (floor_db / 20), len(audio)).astype(np.float32)
    if snr_db is not None:
        audio = audio + rng.normal(0, np.sqrt(power / 10 ** (snr_db / 10)), len(audio)).astype(np.float32)
    return np.clip(audio, -1, 1).astype(np.float32)


def _job(spec: dict[str, Any]) -> tuple[np.ndarray, str] | None:
    rng = np.random.default_rng(spec["seed"])
    try:
        if spec["path"].startswith("tts:"):
            audio, rate = synthesize(spec["text"], spec["voice"], spec["tts_speed"], spec["pitch"])
        else:
            audio, rate = read_wav(spec["path"])
            for path, gap_s in zip(spec.get("then", []), spec.get("gaps_s", []), strict=True):
                more, more_rate = read_wav(path)  # a digit string: clips of one speaker with pauses between
                audio = np.concatenate([audio, np.zeros(int(gap_s * rate), np.float32), resample(more, more_rate, rate)])
    except (subprocess.SubprocessError, ValueError):
        return None
    audio = _augment(audio, rate, spec["speed"], spec["snr_db"], rng, tuple(spec.get("pad_s", (0.0, 0.0))),
                     spec.get("floor_db"))
    if spec.get("via_rate"):  # a telephone channel: through a lower rate and back, as a caller's audio arrives
        audio = resample(resample(audio, SAMPLE_RATE, spec["via_rate"]), spec["via_rate"])
    return features(audio).astype(np.float16), spec["text"]


def _tts_voice(rng: np.random.Generator) -> str:
    if rng.random() < 0.6:
        return f"espeak:{rng.choice(ESPEAK_VOICES)}{rng.choice(ESPEAK_VARIANTS)}"
    return f"flite:{rng.choice(FLITE_VOICES)}"


def _tts_texts(rng: np.random.Generator, lj: int, bot: int, digits: int) -> list[str]:
    _, lj_held_out = lj_clips()
    held_out_texts = {c.text for c in lj_held_out} | {c.text for c in pocketsphinx_clips()}
    texts = rng.permutation(lj_text_corpus(held_out_texts))
    texts = [t for t in texts if 3 <= len(t.split()) <= 24][:lj]
    bot_lines = list(rng.permutation(bot_texts()))[:bot]
    return [*texts, *bot_lines, *digit_strings(rng, digits, longest=5)]


def digit_strings(rng: np.random.Generator, count: int, longest: int) -> list[str]:
    """``count`` spoken digit strings of 1..``longest`` digits ("four one seven"): PINs, card and account
    numbers, as a customer-service caller reads them out."""
    return [" ".join(DIGITS[d] for d in rng.integers(0, 10, rng.integers(1, longest + 1))) for _ in range(count)]


def training_jobs(seed: int = 0, tts_lj: int = 1800, tts_bot: int = 500, tts_digits: int = 500) -> list[dict[str, Any]]:
    """Every utterance of the base stage to render, with its augmentation drawn once (so a build is
    reproducible): the real training clips and a broad TTS set."""
    rng = np.random.default_rng(seed)
    lj_train, _ = lj_clips()
    fsdd_train, _ = fsdd_clips()
    jobs: list[dict[str, Any]] = []

    def add(path: str, text: str, speed: float, noisy: bool, **tts: Any) -> None:
        jobs.append({"path": path, "text": text, "speed": speed, "seed": int(rng.integers(2**31)),
                     "snr_db": float(rng.uniform(10, 40)) if noisy else None, **tts})

    for clip in lj_train:
        for speed in (0.9, 1.0, 1.1, 1.0):
            add(clip.path, clip.text, speed, noisy=speed != 1.0 or len(jobs) % 2 == 0)
    for clip in fsdd_train:
        add(clip.path, clip.text, 1.0, noisy=False)
        add(clip.path, clip.text, float(rng.uniform(0.85, 1.15)), noisy=True)
    for text in _tts_texts(rng, tts_lj, tts_bot, tts_digits):
        voice = _tts_voice(rng)
        add(f"tts:{voice}", text, float(rng.uniform(0.9, 1.1)), noisy=rng.random() < 0.5, voice=voice,
            tts_speed=float(rng.uniform(0.8, 1.25)), pitch=int(rng.integers(25, 75)))
    return jobs


def adaptation_jobs(seed: int = 0, lj_copies: int = 6, digit_strings: int = 600, tts: int = 800) -> list[dict[str, Any]]:
    """The adaptation stage: real speech first (LJ training clips in several speeds, FSDD clips and strings
    of one speaker's digits with pauses), a smaller TTS share so the rest is not forgotten, and silence of
    random length and noise floor before and after every utterance, as a live stream has it."""
    rng = np.random.default_rng(seed + 1)
    lj_train, _ = lj_clips()
    fsdd_train, _ = fsdd_clips()
    jobs: list[dict[str, Any]] = []

    def add(path: str, text: str, speed: float, **extra: Any) -> None:
        jobs.append({"path": path, "text": text, "speed": speed, "seed": int(rng.integers(2**31)),
                     "snr_db": float(rng.uniform(10, 40)) if rng.random() < 0.5 else None,
                     "pad_s": [float(rng.uniform(0, 0.8)), float(rng.uniform(0, 0.8))],
                     "floor_db": None if rng.random() < 0.2 else float(rng.uniform(-75, -40)), **extra})

    for clip in lj_train:
        for copy in range(lj_copies):
            add(clip.path, clip.text, 1.0 if copy == 0 else float(rng.uniform(0.88, 1.12)))
    by_speaker: dict[str, list[Clip]] = {}
    for clip in fsdd_train:
        by_speaker.setdefault(clip.group, []).append(clip)
        for _ in range(2):
            add(clip.path, clip.text, float(rng.uniform(0.88, 1.12)))
    speakers = sorted(by_speaker)
    for _ in range(digit_strings):
        clips = by_speaker[speakers[int(rng.integers(len(speakers)))]]
        picked = [clips[int(i)] for i in rng.integers(0, len(clips), int(rng.integers(2, 6)))]
        add(picked[0].path, " ".join(c.text for c in picked), float(rng.uniform(0.9, 1.1)),
            then=[c.path for c in picked[1:]], gaps_s=[float(rng.uniform(0.05, 0.5)) for _ in picked[1:]])
    shares = (tts * 6 // 10, tts * 2 // 10, tts - tts * 6 // 10 - tts * 2 // 10)
    for text in _tts_texts(rng, *shares):
        voice = _tts_voice(rng)
        add(f"tts:{voice}", text, float(rng.uniform(0.9, 1.1)), voice=voice,
            tts_speed=float(rng.uniform(0.8, 1.25)), pitch=int(rng.integers(25, 75)))
    return jobs


def narrowband_jobs(seed: int = 0, share: float = 0.5, via_rate: int = 8_000,
                    tts: int = 1600) -> list[dict[str, Any]]:
    """The adaptation mix drawn afresh (other speeds, noise, TTS texts and voices; twice the TTS share, for
    more voices), with ``share`` of the utterances that are not already narrowband sent through ``via_rate``
    (telephone band, < 4 kHz).

    Why: the only 8 kHz speech of the other stages is FSDD, four speakers saying digits, so the model met
    narrowband audio from four voices only, and any other speech over a phone line was read badly: held-out
    LJ Speech at 8 kHz had WER 0.71 against 0.41 at full band (0.55 after this stage). It costs a little on
    FSDD itself: 8 kHz audio no longer means "a digit" to the model."""
    rng = np.random.default_rng(seed + 2)
    jobs = adaptation_jobs(seed + 10, tts=tts)
    for job in jobs:
        if not job["path"].startswith(str(ASR_DATA / "fsdd")) and rng.random() < share:
            job["via_rate"] = via_rate
    return jobs


def pause_jobs(seed: int = 0, share: float = 0.5, longest_s: float = 4.0) -> list[dict[str, Any]]:
    """The narrowband mix drawn afresh, with ``share`` of the utterances after a longer pause: 0.8 to
    ``longest_s`` seconds of silence before the speech instead of 0 to 0.8.

    Why: the model's recurrent state starts at zero and takes seconds of silence to settle, and every
    utterance the other stages train on starts within 0.8 s of it. A word spoken 1 s into a stream met a state
    the model had never heard speech from: the FSDD training speakers' digits, 0.84 right at a stream's start,
    were 0.43 right after a 1 s pause (0.66 after 2 s, 0.78 after 5 s)."""
    rng = np.random.default_rng(seed + 3)
    jobs = narrowband_jobs(seed + 20)
    for job in jobs:
        if rng.random() < share:
            job["pad_s"] = [float(rng.uniform(0.8, longest_s)), job["pad_s"][1]]
    return jobs


STAGE_JOBS = {"base": training_jobs, "adapt": adaptation_jobs, "narrowband": narrowband_jobs, "pauses": pause_jobs}


def build(cache: Path, seed: int = 0, processes: int = 2, stage: str = "base", **sizes: int) -> Path:
    """Render a stage's training set to ``cache/train-<hash>.pkl`` (log-mel float16 + text); reused when
    present."""
    require_tts()
    jobs = STAGE_JOBS[stage](seed, **sizes)
    digest = hashlib.sha256(json.dumps(jobs, sort_keys=True).encode()).hexdigest()[:12]
    path = cache / f"train-{digest}.pkl"
    if path.exists():
        return path
    cache.mkdir(parents=True, exist_ok=True)
    with Pool(processes) as pool:
        rendered = [r for r in pool.imap(_job, jobs, chunksize=16) if r is not None and len(r[0]) > 0]
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        pickle.dump({"jobs": len(jobs), "examples": rendered}, f, protocol=pickle.HIGHEST_PROTOCOL)
    tmp.replace(path)
    return path


def _derived_copies(clips: list[Clip], folder: str, group: str,
                    derive: Callable[[np.ndarray, int, str], tuple[np.ndarray, int]]) -> list[Clip]:
    """The clips changed by ``derive(audio, rate, file name) -> (audio, rate)``, as PCM16 WAVs written once
    to ``.cache/asr/eval/<folder>`` (atomically: an interrupted run leaves no half file)."""
    from workers.asr.audio import write_wav

    directory = EVAL_CACHE / folder
    directory.mkdir(parents=True, exist_ok=True)
    copies = []
    for clip in clips:
        path = directory / Path(clip.path).name
        if not path.exists():
            audio, rate = derive(*read_wav(clip.path), path.name)
            tmp = path.with_suffix(".tmp")
            write_wav(tmp, audio, rate)
            tmp.replace(path)
        copies.append(Clip(str(path), clip.text, f"{clip.group}-{group}"))
    return copies


def telephone_copies(clips: list[Clip], rate: int = 8_000) -> list[Clip]:
    """The clips as a phone line delivers them: PCM16 WAVs at ``rate`` (band-limited below 0.45 x rate by the
    resampler), written once to ``.cache/asr/eval`` and fed to the recogniser at that rate."""
    return _derived_copies(clips, f"{rate}hz", f"{rate}hz",
                           lambda audio, source_rate, _: (resample(audio, source_rate, rate), rate))


PAUSE_S = 1.0
"""The pause before each clip of the ``_after_pause`` sets: longer than the recogniser's ``endpoint_s``, as a
caller who waits before saying the digit."""
PAUSE_DBFS = -60.0
"""The pause's white-noise floor (a quiet room through a microphone)."""


def after_pause(clips: list[Clip], seconds: float = PAUSE_S, level_dbfs: float = PAUSE_DBFS) -> list[Clip]:
    """The clips with ``seconds`` of a noise floor before the speech, written once to ``.cache/asr/eval``.
    FSDD clips are cut tight: the digit starts in the stream's first frames. A live stream has a pause before
    it, and a word's start heard after silence is what the recogniser must find there."""

    def with_pause(audio: np.ndarray, rate: int, name: str) -> tuple[np.ndarray, int]:
        seed = int(hashlib.sha256(name.encode()).hexdigest()[:8], 16)
        floor = np.random.default_rng(seed).standard_normal(int(seconds * rate)) * 10 ** (level_dbfs / 20)
        return np.concatenate([floor.astype(np.float32), audio]), rate

    return _derived_copies(clips, f"pause{seconds:g}s", "pause", with_pause)


LEVELS_DBFS = (-50, -30, -10)
"""The input levels the unseen speaker's digits are evaluated at (RMS over the clip): a laptop microphone at
low gain reads around -45 dBFS, a headset close to the mouth around -15."""


def at_level(clips: list[Clip], dbfs: float) -> list[Clip]:
    """The clips scaled to an RMS of ``dbfs`` (PCM16, written once to ``.cache/asr/eval``)."""

    def scaled(audio: np.ndarray, rate: int, _: str) -> tuple[np.ndarray, int]:
        rms = float(np.sqrt(np.mean(audio.astype(np.float64) ** 2))) or 1.0
        return np.clip(audio * (10 ** (dbfs / 20) / rms), -1, 1).astype(np.float32), rate

    return _derived_copies(clips, f"level{dbfs:g}dbfs", f"{dbfs:g}dbfs", scaled)


@dataclass(frozen=True)
class EvaluationSet:
    """Held-out clips, and the phrase list their streams send (None: open dictation)."""

    clips: list[Clip]
    phrases: list[str] | None = None


ACOUSTIC_SETS = ("ljspeech_held_out", "ljspeech_held_out_8khz", f"fsdd_{FSDD_HELD_OUT_SPEAKER}",
                 f"fsdd_{FSDD_HELD_OUT_SPEAKER}_digit_prompt", f"fsdd_{FSDD_HELD_OUT_SPEAKER}_after_pause",
                 f"fsdd_{FSDD_HELD_OUT_SPEAKER}_digit_prompt_after_pause", "pocketsphinx")
"""The sets training measures the streaming model on (its manifest's metrics)."""
EVALUATION_SETS = (*ACOUSTIC_SETS, *(f"fsdd_{FSDD_HELD_OUT_SPEAKER}_at_{level}dbfs" for level in LEVELS_DBFS))


def evaluation_sets(names: list[str] | None = None) -> dict[str, EvaluationSet]:
    """Held-out real speech: the sets ``names`` (default all of :data:`EVALUATION_SETS`), only these built
    (the 8 kHz copies are written on first use). ``ljspeech_held_out_8khz`` is the LJ set again at a phone
    line's 8 kHz; ``fsdd_jackson_digit_prompt`` the unseen speaker's digits again, each stream sending the
    ten digit words as its phrase list, as a client that asked for a digit does; the ``_after_pause`` sets
    the same clips after a pause (:func:`after_pause`); the `_at_<level>dbfs` sets the same clips at that
    input level (:func:`at_level`)."""
    unknown = sorted(set(names or []) - set(EVALUATION_SETS))
    if unknown:
        raise ValueError(f"no evaluation set {', '.join(unknown)}; there are {', '.join(EVALUATION_SETS)}")
    builders = {
        "ljspeech_held_out": lambda: EvaluationSet(lj_clips()[1]),
        "ljspeech_held_out_8khz": lambda: EvaluationSet(telephone_copies(lj_clips()[1])),
        f"fsdd_{FSDD_HELD_OUT_SPEAKER}": lambda: EvaluationSet(fsdd_clips()[1]),
        f"fsdd_{FSDD_HELD_OUT_SPEAKER}_digit_prompt": lambda: EvaluationSet(fsdd_clips()[1], DIGITS),
        f"fsdd_{FSDD_HELD_OUT_SPEAKER}_after_pause": lambda: EvaluationSet(after_pause(fsdd_clips()[1])),
        f"fsdd_{FSDD_HELD_OUT_SPEAKER}_digit_prompt_after_pause":
            lambda: EvaluationSet(after_pause(fsdd_clips()[1]), DIGITS),
        "pocketsphinx": lambda: EvaluationSet(pocketsphinx_clips()),
        **{f"fsdd_{FSDD_HELD_OUT_SPEAKER}_at_{level}dbfs":
           (lambda level=level: EvaluationSet(at_level(fsdd_clips()[1], level))) for level in LEVELS_DBFS},
    }
    return {name: builders[name]() for name in EVALUATION_SETS if not names or name in names}


LM_DIGIT_STRINGS = 30_000
"""Digit strings in the LMs' text. Without them a lone digit word is as unlikely at the start of a segment as
any rare word: "nie" (the acoustic model missing an onset) became "the", a lone "two" became "to". Chosen on
development clips with the committed acoustic model: FSDD training speakers' WER 0.48 (none) -> 0.26 (1,000)
-> 0.18 (10,000) -> 0.165 (30,000), LJ Speech WER 0.23 throughout."""


def lm_corpus() -> list[str]:
    """Text of the character and word language models: LJ Speech transcripts (held-out clips excluded), the
    bot utterances, the digit words and :data:`LM_DIGIT_STRINGS` digit strings of 1..10 digits. No held-out
    reference text is in it."""
    _, lj_held_out = lj_clips()
    excluded = {c.text for c in lj_held_out} | {c.text for c in pocketsphinx_clips()}
    strings = [s for s in digit_strings(np.random.default_rng(123), LM_DIGIT_STRINGS, longest=10) if s not in excluded]
    return [*lj_text_corpus(excluded), *bot_texts(), *DIGITS, *strings]
