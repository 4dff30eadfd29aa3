"""The serving tokenizer reproduces BERT's (Hugging Face ``BertTokenizer``) token ids exactly."""

import pytest

from models import ARTIFACTS
from workers.runtime.text import WordPieceTokenizer

VOCAB = ARTIFACTS / "bot" / "vocab.txt"

# Produced by transformers' BertTokenizer for all-MiniLM-L6-v2 (uncased vocabulary), 2026-11.
HF_REFERENCE = [
    ('I am still waiting on my card?', [101, 1045, 2572, 2145, 3403, 2006, 2026, 4003, 1029, 102]),
    ('How do I activate my card', [101, 2129, 2079, 1045, 20544, 2026, 4003, 102]),
    ("what's the weather in Paris today!!", [101, 2054, 1005, 1055, 1996, 4633, 1999, 3000, 2651, 999, 999, 102]),
    ('Café naïve résumé — über 100€', [101, 7668, 15743, 13746, 1517, 19169, 2531, 30102, 102]),
    ('supercalifragilisticexpialidocious transfer', [101, 3565, 9289, 10128, 29181, 24411, 4588, 10288, 19312, 21273, 10085, 6313, 4651, 102]),
]


@pytest.fixture(scope="module")
def tokenizer() -> WordPieceTokenizer:
    return WordPieceTokenizer.from_file(VOCAB, max_length=64)


@pytest.mark.parametrize(("text", "ids"), HF_REFERENCE)
def test_matches_hugging_face(tokenizer: WordPieceTokenizer, text: str, ids: list[int]) -> None:
    assert tokenizer.encode(text) == ids


def test_truncates_and_pads(tokenizer: WordPieceTokenizer) -> None:
    long = tokenizer.encode("card " * 200)
    assert len(long) == 64 and long[0] == tokenizer.cls_id and long[-1] == tokenizer.sep_id
    ids, mask = tokenizer.encode_batch(["hi", "how do I activate my card"])
    assert ids.shape == mask.shape == (2, 8) and ids.dtype.name == "int64"
    assert mask[0].tolist() == [1, 1, 1, 0, 0, 0, 0, 0] and ids[0, 3] == tokenizer.pad_id


def test_control_characters_and_unknown_words(tokenizer: WordPieceTokenizer) -> None:
    assert tokenizer.basic_tokens("a\x00b\tc\u200bd") == ["ab", "cd"]  # NUL and zero-width space dropped
    assert tokenizer.encode("x" * 101)[1] == tokenizer.unk_id
