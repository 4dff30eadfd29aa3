import json
from collections.abc import Iterator

import numpy as np
import pytest

from models import ARTIFACTS
from workers.asr.audio import float_to_pcm16
from workers.asr.handler import AsrHandler
from workers.asr.protocol import chunk_headers, parse_chunk
from workers.engine.handler import Deferred, InvalidMessage, Pending
from workers.settings import load_settings
from workers.transport.records import Record

CHUNK = float_to_pcm16(np.random.default_rng(0).normal(0, 0.05, 2560).astype(np.float32))  # 160 ms


SAMPLE = ARTIFACTS.parent.parent / "workers" / "asr" / "samples" / "LJ001-0006.wav"


@pytest.fixture
def handler() -> Iterator[AsrHandler]:
    handler = AsrHandler(ARTIFACTS / "asr", load_settings(asr={"max_streams": 2}))
    yield handler
    handler.close()


def chunk(stream: str, seq: int, rate: int = 16000, end: bool = False, pcm: bytes = CHUNK,
          phrases: list[str] | None = None) -> Pending:
    record = Record("asr.audio", 0, seq, stream.encode(), pcm, chunk_headers(seq, rate, end, phrases))
    return Pending(record, stream, parse_chunk(record, 2.0))


def results(outcome) -> list[dict]:
    """The records of one outcome; a deferred one (a final searched in the pool) is waited for."""
    assert not isinstance(outcome, InvalidMessage), outcome
    if isinstance(outcome, Deferred):
        outcome = outcome.finish(outcome.future)
    return [json.loads(r.value) for r in outcome]


def test_every_chunk_gets_a_partial_and_the_end_a_final(handler: AsrHandler) -> None:
    for seq in range(3):
        (partial,) = results(handler.process([chunk("a", seq)])[0])
        assert partial["type"] == "partial" and partial["seq"] == seq and "latency" in partial
    produced = results(handler.process([chunk("a", 3, end=True)])[0])
    assert produced[-1]["type"] == "final" and produced[-1]["end_of_stream"] is True
    assert produced[-1]["audio_s"] == pytest.approx(4 * 0.16)
    assert "a" not in handler.streams


def test_streams_in_one_batch_share_one_model_call(handler: AsrHandler) -> None:
    calls = []
    run = handler.acoustic.run
    handler.acoustic.run = lambda memories, frames: calls.append(len(memories)) or run(memories, frames)
    outcomes = handler.process([chunk("a", 0), chunk("b", 0)])
    assert calls == [2] and all(results(o)[0]["type"] == "partial" for o in outcomes)


def test_duplicates_are_skipped_and_gaps_are_filled_with_silence(handler: AsrHandler) -> None:
    handler.process([chunk("a", 0)])
    handler.process([chunk("a", 1)])
    assert handler.process([chunk("a", 1)]) == [[]]  # redelivered: no second result
    (late,) = results(handler.process([chunk("a", 4)])[0])  # 2 and 3 never came
    assert late["gap_chunks"] == 2 and late["audio_s"] == pytest.approx(5 * 0.16)  # stream time counts the gap


def test_refusals_rate_change_stream_cap_and_chunks_after_the_end(handler: AsrHandler) -> None:
    handler.process([chunk("a", 0)])
    refused = handler.process([chunk("a", 1, rate=8000)])[0]
    assert isinstance(refused, InvalidMessage) and refused.code == "rate_changed"
    handler.process([chunk("b", 0)])
    refused = handler.process([chunk("c", 0)])[0]
    assert isinstance(refused, InvalidMessage) and refused.code == "too_many_streams"
    handler.process([chunk("b", 1, end=True)])
    assert handler.process([chunk("b", 1)]) == [[]]  # a late duplicate of the ended stream
    refused = handler.process([chunk("b", 2)])[0]
    assert isinstance(refused, InvalidMessage) and refused.code == "stream_ended"
    assert results(handler.process([chunk("b", 0)])[0])[0]["type"] == "partial"  # seq 0 starts it again


def test_a_stream_met_mid_way_resumes_with_fresh_state(handler: AsrHandler) -> None:
    (partial,) = results(handler.process([chunk("z", 7)])[0])
    assert partial["resumed"] is True and partial["seq"] == 7


def test_a_stream_reaching_its_duration_bound_is_finalised() -> None:
    handler = AsrHandler(ARTIFACTS / "asr", load_settings(asr={"max_stream_s": 0.3}))
    handler.process([chunk("a", 0)])
    produced = results(handler.process([chunk("a", 1)])[0])
    assert produced[-1]["type"] == "final" and produced[-1]["reason"] == "max_duration"
    refused = handler.process([chunk("a", 2)])[0]
    assert isinstance(refused, InvalidMessage) and refused.code == "stream_ended"


def test_a_stream_that_goes_quiet_without_end_gets_an_idle_final() -> None:
    """Its final is searched like any other (in the search process, off the batch loop, by default), and
    equals the one searched in the batch loop."""
    from workers.asr.audio import load_audio

    speech = load_audio(SAMPLE)[:16000 * 2]
    finals = {}
    for processes in (1, 0):
        handler = AsrHandler(ARTIFACTS / "asr", load_settings(asr={"search_processes": processes}))
        try:
            for seq, start in enumerate(range(0, len(speech), 2560)):
                handler.process([chunk("quiet", seq, pcm=float_to_pcm16(speech[start:start + 2560]))])
            handler.process([chunk("silent", 0, pcm=bytes(2))])  # one sample, no frame decoded: nothing to finalise
            assert handler.housekeeping() == []  # not idle yet
            handler.streams.ttl_s = 0.0
            (owed,) = handler.housekeeping()
            assert owed.key == "quiet" and isinstance(owed.outcome, Deferred) == bool(processes)
            (final,) = results(owed.outcome)
            assert final["stream_id"] == "quiet" and final["type"] == "final" and final["reason"] == "idle_timeout"
            assert final["text"] and final["seq"] == seq and final["end_of_stream"] is False
            assert "latency" not in final and len(handler.streams) == 0
            (resumed,) = results(handler.process([chunk("quiet", seq + 1)])[0])  # a late chunk starts afresh
            assert resumed.get("resumed") is True
            finals[processes] = final
        finally:
            handler.close()
    assert finals[1] == finals[0]


def test_a_final_searched_in_the_pool_equals_one_searched_in_the_batch_loop() -> None:
    from workers.asr.audio import load_audio

    pcm = float_to_pcm16(load_audio(SAMPLE))
    step = 5120  # 160 ms of PCM16
    finals = {}
    for processes in (1, 0):
        handler = AsrHandler(ARTIFACTS / "asr", load_settings(asr={"search_processes": processes}))
        try:
            produced = []
            for seq, start in enumerate(range(0, len(pcm), step)):
                end = start + step >= len(pcm)
                (outcome,) = handler.process([chunk("s", seq, end=end, pcm=pcm[start:start + step])])
                if processes == 0 or end:
                    assert isinstance(outcome, Deferred) == bool(processes)
                produced += results(outcome)
            finals[processes] = [r for r in produced if r["type"] == "final"]
        finally:
            handler.close()
    off_loop, in_loop = finals[1], finals[0]
    assert [r["text"] for r in off_loop] == [r["text"] for r in in_loop] and off_loop[-1]["text"]
    assert [r["words"] for r in off_loop] == [r["words"] for r in in_loop]
    assert all(0 <= w["confidence"] <= 1 for r in off_loop for w in r["words"])
    assert off_loop[-1]["latency"]["search_ms"] > 0 and "search_ms" not in in_loop[-1]["latency"]


def test_the_second_pass_starts_when_speech_ends_and_the_final_at_the_endpoint_uses_it() -> None:
    """Starting at 0.3 s, a pause shorter than the endpoint wastes the pass started in it; the one started
    0.3 s into the last silence is what the endpoint's final sends, and the finals are those of a worker that
    waits."""
    from workers.asr.audio import load_audio

    speech = load_audio(SAMPLE)
    audio = np.concatenate([speech, np.zeros(8000, np.float32), speech, np.zeros(24000, np.float32)])
    pcm, step = float_to_pcm16(audio), 5120
    finals, came_early = {}, []
    for processes in (1, 0):
        handler = AsrHandler(ARTIFACTS / "asr", load_settings(asr={"search_processes": processes,
                                                                   "early_second_pass_after_s": 0.3}))
        used, discarded = handler._early["used"], handler._early["discarded"]
        before = used._value.get(), discarded._value.get()
        try:
            produced = []
            for seq, start in enumerate(range(0, len(pcm), step)):
                held = handler.early.get("s")
                (outcome,) = handler.process([chunk("s", seq, end=start + step >= len(pcm), pcm=pcm[start:start + step])])
                if held is not None and isinstance(outcome, Deferred) and outcome.future is held[1]:
                    came_early.append(seq)
                produced += results(outcome)
            finals[processes] = [r for r in produced if r["type"] == "final" and r["text"]]
            if processes:
                assert used._value.get() - before[0] == 1 and discarded._value.get() - before[1] >= 1
        finally:
            handler.close()
    assert len(came_early) == 1  # the endpoint's final came with the pass started before it
    assert [r["reason"] for r in finals[1]] == ["endpoint"]
    assert [(r["text"], r["words"]) for r in finals[1]] == [(r["text"], r["words"]) for r in finals[0]]


def test_an_early_pass_that_waits_longer_is_not_started_in_a_shorter_pause() -> None:
    """With ``early_second_pass_after_s`` 0.6, the 0.5 s pause inside the segment starts no pass; the one
    started 0.6 s into the last silence is still there for the endpoint (0.8 s)."""
    from workers.asr.audio import load_audio

    speech = load_audio(SAMPLE)
    audio = np.concatenate([speech, np.zeros(8000, np.float32), speech, np.zeros(24000, np.float32)])
    pcm, step = float_to_pcm16(audio), 5120
    handler = AsrHandler(ARTIFACTS / "asr", load_settings(asr={"search_processes": 1, "early_second_pass_after_s": 0.6}))
    used, discarded = handler._early["used"], handler._early["discarded"]
    before = used._value.get(), discarded._value.get()
    try:
        for seq, start in enumerate(range(0, len(pcm), step)):
            (outcome,) = handler.process([chunk("s", seq, end=start + step >= len(pcm), pcm=pcm[start:start + step])])
            results(outcome)
    finally:
        handler.close()
    assert (used._value.get() - before[0], discarded._value.get() - before[1]) == (1, 0)


def test_a_phrase_list_sent_once_holds_for_the_stream_and_reaches_the_search_pool() -> None:
    from workers.asr.audio import load_audio

    pcm = float_to_pcm16(load_audio(SAMPLE))
    step = 5120
    handler = AsrHandler(ARTIFACTS / "asr", load_settings(asr={"search_processes": 1}))
    try:
        produced = []
        for seq, start in enumerate(range(0, len(pcm), step)):
            phrases = ["example", "[unk]"] if seq == 0 else None  # only the first chunk carries it
            end = start + step >= len(pcm)
            (outcome,) = handler.process([chunk("s", seq, end=end, pcm=pcm[start:start + step], phrases=phrases)])
            produced += results(outcome)
    finally:
        handler.close()
    words = [w["word"] for r in produced if r["type"] == "final" for w in r["words"]]
    assert set(words) == {"example", "[unk]"}
    partial_words = {w["word"] for r in produced if r["type"] == "partial" for w in r["words"]}
    assert len(partial_words) > 3  # partials stay open dictation


def test_finals_carry_their_words_written_with_casing_and_punctuation_unless_turned_off() -> None:
    from workers.asr.audio import load_audio

    pcm = float_to_pcm16(load_audio(SAMPLE))
    produced: dict[bool, list[dict]] = {}
    for punctuate in (True, False):
        handler = AsrHandler(ARTIFACTS / "asr", load_settings(asr={"search_processes": 0, "punctuate": punctuate}))
        assert ("punctuator" in vars(handler.acoustic)) == punctuate  # turned off, the tagger is not even loaded
        try:
            produced[punctuate] = [r for seq, start in enumerate(range(0, len(pcm), 5120))
                                   for r in results(handler.process([chunk("s", seq, end=start + 5120 >= len(pcm),
                                                                            pcm=pcm[start:start + 5120])])[0])]
        finally:
            handler.close()
    finals = [r for r in produced[True] if r["type"] == "final"]
    assert finals and all(r["display"] for r in finals)
    assert not any("display" in r for r in produced[True] if r["type"] == "partial")
    assert not any("display" in r for r in produced[False])
    assert [r["text"] for r in produced[False]] == [r["text"] for r in produced[True]]  # the words are the same
    display = " ".join(r["display"] for r in finals)
    assert display[0].isupper() and display[-1] in ".?," and display.lower() != display
    assert [w.lower().strip(",.?") for w in display.split()] == " ".join(r["text"] for r in finals).split()


def test_a_stream_restored_from_its_changelog_bytes_goes_on_as_if_never_moved() -> None:
    """Mid-sentence: the snapshot taken after 12 chunks, decoded into another worker, hears the rest of the
    sentence as the original does, and its final is the whole sentence."""
    from workers.asr.audio import read_audio

    audio, rate = read_audio(SAMPLE)
    step = round(rate * 0.16)
    pieces = [float_to_pcm16(audio[i:i + step]) for i in range(0, len(audio), step)]
    settings = load_settings(asr={"search_processes": 0})
    original, moved = AsrHandler(ARTIFACTS / "asr", settings), AsrHandler(ARTIFACTS / "asr", settings)
    try:
        for seq, pcm in enumerate(pieces[:12]):
            results(original.process([chunk("s", seq, rate, pcm=pcm)])[0])
        snapshot = original.state_codec.encode(original.streams.peek("s"))
        moved.streams.put("s", 0, moved.state_codec.decode(snapshot))

        def rest(handler: AsrHandler) -> list[dict]:
            said = []
            for seq in range(12, len(pieces)):
                said += results(handler.process([chunk("s", seq, rate, pcm=pieces[seq], end=seq == len(pieces) - 1)])[0])
            return [{k: v for k, v in r.items() if k != "latency"} for r in said]

        expected, got = rest(original), rest(moved)
        assert got == expected
        assert got[-1]["type"] == "final" and len(got[-1]["text"].split()) >= 8 and not got[-1].get("resumed")
        assert 10_000 < len(snapshot) < 2_000_000
    finally:
        original.close()
        moved.close()
