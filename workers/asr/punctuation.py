"""Punctuation and casing for finals: ``"display"`` beside the normalised ``"text"``.

The acoustic model hears 26 letters, the apostrophe and the space: "i was not at dallas on the twenty
second" is what a final says. A user reading a transcript wants "I was not at Dallas on the twenty
second." (sherpa-onnx users asked for it, #291; Azure calls the two forms Lexical and Display). A small
tagger, trained in TensorFlow on the casing and punctuation of the LJ Speech transcripts and Banking77
queries (``models/punctuation.py``) and exported to ONNX, labels every word of a final with its casing and
the punctuation that follows it. ``text`` and the word timings stay as they are: WER is measured on them,
and clients that match words keep working.

The label scheme lives here, so the training code derives labels from real text with the same functions
the worker uses to apply them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from workers.runtime.onnx_model import OnnxModel
from workers.settings import OnnxSettings

CASES = ("lower", "capitalized", "upper")
"""How a word is written: "the", "The", "THE" (acronyms: "FBI")."""
MARKS = ("", ",", ".", "?")
"""What follows a word: nothing, a comma (also ; : and a dash), a full stop (also !), a question mark."""
PAD, UNKNOWN = "<pad>", "<unk>"
"""Word ids 0 and 1; the vocabulary follows (``vocab.txt`` beside the model)."""
_PIECES = re.compile(r"[a-z']+")
_MARK_OF = {",": 1, ";": 1, ":": 1, "-": 1, ".": 2, "!": 2, "?": 3}


def labelled(line: str) -> list[tuple[str, int, int]]:
    """(word as the recogniser writes it, case index, mark index) for each word of a written ``line``:
    "It cost $5, Mr. O'Neil?" -> (it, capitalized, none), (cost, lower, comma), (mr, capitalized, full stop),
    (o'neil, capitalized, question mark). A token without letters ("$5,", "--") is no word; its mark goes to
    the word before (training uses the LJ Speech transcripts' normalised column, where numbers are spelled
    out)."""
    found: list[tuple[str, int, int]] = []
    for token in line.replace("’", "'").split():
        lowered = token.lower()
        if len(lowered) != len(token):
            continue  # a character whose lower case has another length: no alignment to trust
        pieces = list(_PIECES.finditer(lowered))
        mark = _mark(token[pieces[-1].end():] if pieces else token)
        if not pieces:
            if found and mark and not found[-1][2]:
                found[-1] = (*found[-1][:2], mark)  # " -- " or a lone "." after a word
            continue
        for n, piece in enumerate(pieces):
            spelled = token[piece.start():piece.end()]
            word = piece.group().strip("'")
            if word:
                found.append((word, _case(spelled.strip("'")), mark if n == len(pieces) - 1 else 0))
    return found


def _mark(tail: str) -> int:
    """The strongest mark in what follows a word's letters ("?" over "." over ",")."""
    return max((_MARK_OF.get(c, 0) for c in tail), default=0)


def _case(written: str) -> int:
    if len(written) > 1 and written.isupper():
        return 2
    return 1 if written[:1].isupper() else 0


def written(words: list[str], cases: list[int], marks: list[int]) -> str:
    """The words with their casing and marks: ``written(*zip(*labelled(line)))`` gives ``line`` back, less
    what the recogniser cannot write (digits, symbols, quotes, dashes)."""
    out = []
    for word, case, mark in zip(words, cases, marks, strict=True):
        if case == 2:
            word = word.upper()
        elif case == 1 or word == "i" or word.startswith("i'"):
            word = word[:1].upper() + word[1:]
        out.append(word + MARKS[mark])
    return " ".join(out)


@dataclass(frozen=True)
class Punctuator:
    """The exported tagger with its vocabulary. Not thread-safe beyond ONNX Runtime's own guarantees."""

    model: OnnxModel
    ids: dict[str, int]

    @classmethod
    def load(cls, asr_model_dir: Path, onnx: OnnxSettings | None = None) -> Punctuator | None:
        """The tagger in ``punctuation/`` of an ASR model directory; None when it ships none."""
        folder = Path(asr_model_dir) / "punctuation"
        return cls.from_folder(folder, onnx) if (folder / "model.onnx").exists() else None

    @classmethod
    def from_folder(cls, folder: Path, onnx: OnnxSettings | None = None) -> Punctuator:
        """``model.onnx``, ``manifest.json`` and ``vocab.txt``; one ONNX Runtime thread (a final is ~20 words)."""
        vocabulary = (folder / "vocab.txt").read_text(encoding="utf-8").split("\n")
        if vocabulary[:2] != [PAD, UNKNOWN]:
            raise ValueError(f"{folder}/vocab.txt must start with {PAD} and {UNKNOWN}")
        settings = onnx or OnnxSettings(providers=["CPUExecutionProvider"], intra_op_num_threads=1)
        return cls(OnnxModel(folder, settings), {w: i for i, w in enumerate(vocabulary) if w})

    def encode(self, words: list[str]) -> np.ndarray:
        return np.array([self.ids.get(w, 1) for w in words], np.int32)

    def tag(self, words: list[str]) -> tuple[list[int], list[int]]:
        """Per word, the index of its case in :data:`CASES` and of the mark after it in :data:`MARKS`."""
        out = self.model.run({"words": self.encode(words)[None, :]})
        return out["case"][0].argmax(-1).tolist(), out["mark"][0].argmax(-1).tolist()

    def display(self, words: list[str]) -> str:
        """One final's words, written: "i was there" -> "I was there."."""
        return written(words, *self.tag(words)) if words else ""
