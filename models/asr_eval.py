"""``workers evaluate asr``: one table of word error rates on held-out real speech, the way users meet it.

Each set goes through four systems in the same run:

- **partials**: what a listener last saw of each segment before its final: its last partial (the partials'
  beam search with the language models, ``partial_beam``), each clip followed by 1 s of silence as a
  speaker pauses, so the segment ends at its endpoint after partials that heard all of it. The recogniser
  runs with the worker's own settings (the second pass on, whose speech-by-energy rule opens segments the
  streaming model does not answer), though only partials are read;
- **finals**: what the worker sends as finals (the second pass: Whisper tiny.en over the segment's audio;
  the CTC beam search for a stream with a phrase list);
- **floor**: the streaming model's own finals (the CTC beam search with its language models, no second
  pass), i.e. what the worker sent before the second pass;
- **anchor**: the same clips through offline Whisper tiny.en (faster-whisper, beam 5, whole clip), when
  ``faster-whisper`` is installed (``pip install 'streaming-inference-workers[whisper-reference]'``).

Every clip of every set is held out from the streaming model's training, its language models and its TTS
text (``models.asr_data``). Whisper's own training data is OpenAI's and not known here: LJ Speech and
LibriVox recordings are public and may have been in it, so the unseen speaker's digits are the cleanest test.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from models import ARTIFACTS

DEFAULT_SETS = ("ljspeech_held_out", "ljspeech_held_out_8khz", "fsdd_jackson", "fsdd_jackson_at_-50dbfs",
                "fsdd_jackson_at_-30dbfs", "fsdd_jackson_at_-10dbfs", "fsdd_jackson_digit_prompt", "pocketsphinx")
SYSTEMS = ("partials", "finals", "floor", "anchor")
PAUSE_S = 1.0
"""Silence after each clip for the partials: longer than the endpoint (0.8 s), as a speaker pauses."""


def _streaming(model_dir: Path, system: str) -> Callable[[list[str], Any], list[str]]:
    from workers.asr.recognizer import AcousticModel, Recognizer
    from workers.asr.settings import AsrSettings
    from workers.asr.transcribe import transcribe
    from workers.settings import OnnxSettings

    settings = {"partials": AsrSettings(),  # the worker's own: what opens and ends a segment shapes its partials
                "finals": AsrSettings(partial_beam=0), "floor": AsrSettings(second_pass=False, partial_beam=0)}[system]
    recognizer = Recognizer.from_settings(AcousticModel(model_dir, OnnxSettings()), settings)

    def run(paths: list[str], phrases: Any) -> list[str]:
        if system == "partials":
            return [r["partials"] for r in transcribe(paths, recognizer, phrases=phrases, pause_s=PAUSE_S)]
        return [r["text"] for r in transcribe(paths, recognizer, phrases=phrases)]

    return run


def _anchor() -> Callable[[list[str], Any], list[str]] | None:
    try:
        from faster_whisper import WhisperModel
    except ImportError:
        return None
    from models.whisper import weights_dir
    from workers.asr.audio import SAMPLE_RATE, read_wav, resample
    from workers.asr.text import spoken

    model = WhisperModel(str(weights_dir()), device="cpu", compute_type="int8", cpu_threads=2)

    def run(paths: list[str], _: Any) -> list[str]:
        texts = []
        for path in paths:
            audio, rate = read_wav(path)
            segments, _info = model.transcribe(resample(audio, rate, SAMPLE_RATE), language="en", beam_size=5)
            texts.append(spoken(" ".join(s.text for s in segments)))
        return texts

    return run


def evaluate(model_dir: Path = ARTIFACTS / "asr", sets: list[str] | None = None, every: int = 1,
             systems: tuple[str, ...] = SYSTEMS) -> dict[str, Any]:
    """Per set and system: clips, WER, exact match (digit accuracy on the FSDD sets), seconds spent.
    ``every``: only every n-th clip of each set (a quicker look; the README quotes ``every=1``)."""
    from models.asr_data import evaluation_sets
    from workers.asr.lm import Phrases
    from workers.asr.text import normalize, word_errors

    names = list(sets or DEFAULT_SETS)
    built = evaluation_sets(names)
    chosen = {name: built[name] for name in names}
    runners: dict[str, Callable[[list[str], Any], list[str]]] = {}
    for system in systems:
        runner = _anchor() if system == "anchor" else _streaming(model_dir, system)
        if runner is not None:
            runners[system] = runner
    report: dict[str, Any] = {"model": str(model_dir), "every": every, "sets": {}}
    for name, evaluation in chosen.items():
        clips = evaluation.clips[::every]
        phrases = Phrases.parse(evaluation.phrases) if evaluation.phrases else None
        row: dict[str, Any] = {"clips": len(clips)}
        for system, runner in runners.items():
            started = time.perf_counter()
            texts = runner([c.path for c in clips], phrases)
            errors = words = exact = 0
            for clip, text in zip(clips, texts, strict=True):
                e, n = word_errors(clip.text, text)
                errors, words, exact = errors + e, words + n, exact + (normalize(text) == normalize(clip.text))
            row[system] = {"wer": round(errors / max(words, 1), 4), "exact": round(exact / max(len(clips), 1), 4),
                           "seconds": round(time.perf_counter() - started, 1)}
        report["sets"][name] = row
    return report


def format_table(report: dict[str, Any]) -> str:
    """The report as a Markdown table: WER per system (digit accuracy beside it on the FSDD sets)."""
    systems = [s for s in SYSTEMS if any(s in row for row in report["sets"].values())]
    lines = ["| set | clips | " + " | ".join(systems) + " |", "|---|---|" + "---|" * len(systems)]
    for name, row in report["sets"].items():
        cells = []
        for system in systems:
            if system not in row:
                cells.append("")
                continue
            cell = f"{row[system]['wer']:.3f}"
            if name.startswith("fsdd"):
                cell += f" (digits {row[system]['exact']:.3f})"
            cells.append(cell)
        lines.append(f"| {name} | {row['clips']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
