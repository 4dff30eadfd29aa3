import pytest

from workers.asr.protocol import chunk_headers, parse_chunk
from workers.engine.handler import InvalidMessage
from workers.transport.records import Record

PCM = b"\x01\x00" * 1600


def record(value: bytes | None = PCM, key: bytes | None = b"s1", headers=None) -> Record:
    return Record("asr.audio", 0, 0, key, value, chunk_headers(3, 16000) if headers is None else headers)


def test_a_good_chunk_and_an_empty_end_of_stream() -> None:
    chunk = parse_chunk(record(), 2.0)
    assert (chunk.stream_id, chunk.seq, chunk.sample_rate, chunk.end, chunk.samples) == ("s1", 3, 16000, False, 1600)
    assert parse_chunk(record(b"", headers=chunk_headers(4, 16000, end=True)), 2.0).end
    assert chunk.phrases is None


def test_a_phrase_list_travels_in_a_header() -> None:
    chunk = parse_chunk(record(headers=chunk_headers(0, 8000, phrases=["Yes", "no", "[unk]"])), 2.0)
    assert chunk.phrases is not None and chunk.phrases.phrases == ("yes", "no") and chunk.phrases.open


def phrases_header(raw: bytes) -> list:
    return [*chunk_headers(0, 16000), ("phrases", raw)]


@pytest.mark.parametrize(
    ("rec", "code"),
    [
        (record(key=None), "missing_key"),
        (record(key=b"\xff\xfe"), "invalid_utf8"),
        (record(key=b"k" * 300), "field_too_long"),
        (record(headers=[("seq", b"0")]), "missing_header"),
        (record(headers=[("sample_rate", b"16000")]), "missing_header"),
        (record(headers=[("sample_rate", b"16k"), ("seq", b"0")]), "bad_header"),
        (record(headers=[("sample_rate", b"16000"), ("seq", b"-1")]), "bad_header"),
        (record(headers=[("sample_rate", b"4000"), ("seq", b"0")]), "unsupported_sample_rate"),
        (record(headers=[("sample_rate", b"16000"), ("seq", b"0"), ("end", b"yes")]), "bad_header"),
        (record(headers=[("protocol", b"2"), ("sample_rate", b"16000"), ("seq", b"0")]), "unsupported_protocol"),
        (record(value=b"\x01\x00\x02"), "bad_audio"),
        (record(value=b""), "empty_chunk"),
        (record(value=b"\x00\x00" * 40000), "chunk_too_long"),
        (record(headers=phrases_header(b"yes,no")), "bad_phrases"),
        (record(headers=phrases_header(b'{"yes": 1}')), "bad_phrases"),
        (record(headers=phrases_header(b'["yes", 2]')), "bad_phrases"),
        (record(headers=phrases_header(b"[]")), "bad_phrases"),
        (record(headers=phrases_header(b'["\xff"]')), "bad_phrases"),
        (record(headers=phrases_header(b'["a",' + b'"b",' * 20000 + b'"c"]')), "bad_phrases"),
    ],
)
def test_bad_chunks_are_refused_with_a_reason(rec: Record, code: str) -> None:
    with pytest.raises(InvalidMessage) as caught:
        parse_chunk(rec, 2.0)
    assert caught.value.code == code
