"""BERT WordPiece tokenisation (uncased), in plain Python so workers need neither TensorFlow nor HF.

Matches BERT's ``BasicTokenizer`` + ``WordpieceTokenizer``: clean control characters, lower-case,
strip accents, split on whitespace and punctuation, then greedy longest-match sub-words with ``##``.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache
from pathlib import Path

import numpy as np


def _is_punctuation(ch: str) -> bool:
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def _is_cjk(cp: int) -> bool:
    return (
        0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF or 0x2A700 <= cp <= 0x2B73F
        or 0x2B740 <= cp <= 0x2B81F or 0x2B820 <= cp <= 0x2CEAF or 0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F
    )


class WordPieceTokenizer:
    def __init__(self, vocab: list[str], max_length: int = 64, lowercase: bool = True) -> None:
        self.vocab = {token: i for i, token in enumerate(vocab)}
        self.max_length = max_length
        self.lowercase = lowercase
        self.cls_id = self.vocab["[CLS]"]
        self.sep_id = self.vocab["[SEP]"]
        self.pad_id = self.vocab["[PAD]"]
        self.unk_id = self.vocab["[UNK]"]
        self._pieces = lru_cache(maxsize=65536)(self._wordpiece)

    @classmethod
    def from_file(cls, path: str | Path, max_length: int = 64) -> WordPieceTokenizer:
        return cls(Path(path).read_text(encoding="utf-8").splitlines(), max_length)

    def basic_tokens(self, text: str) -> list[str]:
        cleaned = []
        for ch in text:
            cp = ord(ch)
            if cp == 0 or cp == 0xFFFD or (unicodedata.category(ch).startswith("C") and ch not in "\t\n\r"):
                continue
            if ch.isspace():
                cleaned.append(" ")
            elif _is_cjk(cp):
                cleaned.append(f" {ch} ")
            else:
                cleaned.append(ch)
        tokens = []
        for word in "".join(cleaned).split():
            if self.lowercase:
                word = "".join(c for c in unicodedata.normalize("NFD", word.lower()) if unicodedata.category(c) != "Mn")
            current = ""
            for ch in word:
                if _is_punctuation(ch):
                    if current:
                        tokens.append(current)
                        current = ""
                    tokens.append(ch)
                else:
                    current += ch
            if current:
                tokens.append(current)
        return tokens

    def _wordpiece(self, word: str) -> tuple[int, ...]:
        if len(word) > 100:
            return (self.unk_id,)
        ids = []
        start = 0
        while start < len(word):
            end = len(word)
            found = None
            while start < end:
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in self.vocab:
                    found = self.vocab[piece]
                    break
                end -= 1
            if found is None:
                return (self.unk_id,)
            ids.append(found)
            start = end
        return tuple(ids)

    def encode(self, text: str) -> list[int]:
        """``[CLS] pieces [SEP]``, truncated to ``max_length``."""
        ids = [i for word in self.basic_tokens(text) for i in self._pieces(word)]
        return [self.cls_id, *ids[: self.max_length - 2], self.sep_id]

    def encode_batch(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Token ids and attention mask, padded to the longest text of the batch (int64, [batch, length])."""
        return self.pad([self.encode(t) for t in texts])

    def pad(self, encoded: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
        """Encoded texts -> ids and attention mask, padded to the longest (int64, [batch, length])."""
        length = max(len(e) for e in encoded)
        ids = np.full((len(encoded), length), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(encoded), length), dtype=np.int64)
        for row, e in enumerate(encoded):
            ids[row, : len(e)] = e
            mask[row, : len(e)] = 1
        return ids, mask
