"""Speech end to end through the real broker: a WAV file streamed as PCM16 chunks (``workers mic --wav``)
yields partials (the language-model search, as the recogniser writes them in process), then a final equal to
``workers transcribe`` on the same file; two streams interleave;
bad chunks land in the DLQ with their reason and original bytes; a word too soft for greedy decoding is
found, a digit prompt's phrase list turns a misheard digit into the digit, and quiet noise yields no word."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO, collect
from workers.asr.audio import float_to_pcm16
from workers.asr.live import run_mic, wav_chunks
from workers.asr.text import spoken
from workers.asr.protocol import chunk_headers
from workers.asr.settings import AsrSettings
from workers.client import send
from workers.transport.records import OutgoingRecord

pytestmark = pytest.mark.integration
SHARED = REPO.parent / "shared" / "data" / "asr"
FILES = [SHARED / "pocketsphinx" / "librivox" / "sense_and_sensibility_01_austen_64kb-0880.wav",
         SHARED / "fsdd" / "recordings" / "7_jackson_3.wav"]  # 16 kHz and 8 kHz (resampled by the worker)


def transcribed(paths: list[Path], phrases: list[str] | None = None) -> dict[str, dict]:
    """``workers transcribe``'s line per file, by file name."""
    option = ["--phrases", ",".join(phrases)] if phrases else []
    out = subprocess.run([sys.executable, "-m", "workers", "transcribe", *option, *map(str, paths)], cwd=REPO,
                         capture_output=True, text=True, check=True).stdout
    return {Path(line["file"]).name: line for line in map(json.loads, out.splitlines())}


def transcribe(paths: list[Path], phrases: list[str] | None = None) -> dict[str, str]:
    return {name: line["text"] for name, line in transcribed(paths, phrases).items()}


@pytest.mark.skipif(not FILES[0].exists(), reason="../shared/data/asr not present")
def test_a_streamed_wav_yields_partials_then_the_final_transcribe_gives(kafka, topics, start_worker) -> None:
    start_worker("asr", kafka, topics)
    expected = transcribed(FILES)
    for path in FILES:
        seen: list[dict] = []
        rate, chunks = wav_chunks(path, 0.1, realtime=False)
        finals = run_mic(kafka, chunks, rate, stream_id=f"wav-{path.stem}", out=open("/dev/null", "w"),
                         topics=(topics["input"], topics["output"]), on_result=seen.append, final_timeout_s=60)
        partials = [r for r in seen if r["type"] == "partial"]
        assert len(partials) >= 5 and seen[-1]["type"] == "final" and seen[-1]["end_of_stream"]
        assert [r["seq"] for r in partials] == sorted(r["seq"] for r in partials)
        assert " ".join(f["text"] for f in finals) == expected[path.name]["text"]
        # written with casing and punctuation, as transcribe writes it; the words stay as heard
        assert " ".join(f["display"] for f in finals) == expected[path.name]["display"]
        assert spoken(" ".join(f["display"] for f in finals)) == expected[path.name]["text"]
        assert not any("display" in r for r in partials)
        assert all(r["latency"]["event_to_result_ms"] >= 0 for r in seen)
        # a searched final's words carry their confidence; a partial's words do not
        assert all(0 <= w["confidence"] <= 1 for f in finals for w in f["words"])
        assert not any("confidence" in w for r in partials for w in r["words"])
        # partials are the language-model search over the segment so far: what the recogniser writes in
        # process for the same chunks (the worker's defaults), not its greedy text
        assert [r["text"] for r in partials] == in_process_partials(path, 0.1, partial_beam=AsrSettings().partial_beam)
    greedy = in_process_partials(FILES[0], 0.1, partial_beam=0)
    assert greedy != in_process_partials(FILES[0], 0.1, partial_beam=AsrSettings().partial_beam)


def in_process_partials(path: Path, chunk_s: float, partial_beam: int) -> list[str]:
    """The partials' texts, chunk by chunk, of ``path`` sent as ``workers mic --wav`` sends it (PCM16 chunks,
    then an empty chunk that ends the stream), through the recogniser in this process."""
    from models import ARTIFACTS
    from workers.asr.audio import pcm16_to_float
    from workers.asr.recognizer import AcousticModel, Recognizer
    from workers.settings import OnnxSettings

    recognizer = Recognizer.from_settings(AcousticModel(ARTIFACTS / "asr", OnnxSettings()),
                                          AsrSettings(partial_beam=partial_beam))
    rate, chunks = wav_chunks(path, chunk_s, realtime=False)
    stream, texts = recognizer.new_stream(rate), []
    for chunk, end in [*((c, False) for c in chunks), (np.zeros(0, np.float32), True)]:
        for segment in recognizer.accept([stream], [pcm16_to_float(float_to_pcm16(chunk))], [end])[0]:
            if not segment.final:
                texts.append(segment.text)
    return texts


def test_bad_chunks_are_dead_lettered_and_streams_go_on(kafka, topics, start_worker) -> None:
    worker = start_worker("asr", kafka, topics)
    pcm = float_to_pcm16(np.zeros(1600, np.float32))
    records = [
        OutgoingRecord(topics["input"], pcm, b"s1", chunk_headers(0, 16000)),
        OutgoingRecord(topics["input"], b"\x01\x02\x03", b"s1", chunk_headers(1, 16000)),  # odd bytes
        OutgoingRecord(topics["input"], pcm, b"s1", [("seq", b"1")]),  # no sample_rate
        OutgoingRecord(topics["input"], pcm, b"s1", chunk_headers(1, 44100)),  # rate changed mid-stream
        OutgoingRecord(topics["input"], pcm, b"s1", chunk_headers(1, 16000, end=True)),
    ]
    send(kafka, records)
    dlq = collect(kafka, [topics["dlq"]], until=lambda r: len(r) >= 3, timeout_s=60)
    reasons = sorted(dict(r.headers)["dlq.reason"].decode() for r in dlq)
    assert reasons == ["bad_audio", "missing_header", "rate_changed"]
    assert b"\x01\x02\x03" in {r.value for r in dlq}  # the original bytes
    out = collect(kafka, [topics["output"]], until=lambda r: any(b'"final"' in x.value for x in r), timeout_s=60)
    assert [json.loads(r.value)["type"] for r in out] == ["partial", "final"]
    assert worker.metric("workers_messages_dlq_total", reason="rate_changed") == 1


def test_a_stream_that_stops_without_end_gets_an_idle_final(kafka, topics, start_worker) -> None:
    from workers.asr.audio import load_audio

    worker = start_worker("asr", kafka, topics, WORKERS_STATE_TTL_S="2")
    speech = load_audio(REPO / "workers" / "asr" / "samples" / "LJ001-0006.wav")[: 16000 * 2]
    chunks = [speech[i:i + 2560] for i in range(0, len(speech), 2560)]
    send(kafka, [OutgoingRecord(topics["input"], float_to_pcm16(c), b"gone", chunk_headers(seq, 16000))
                 for seq, c in enumerate(chunks)])  # the client vanishes: no `end`
    out = collect(kafka, [topics["output"]], until=lambda r: any(b"idle_timeout" in x.value for x in r), timeout_s=60)
    results = [json.loads(r.value) for r in out]
    final = results[-1]
    assert final["type"] == "final" and final["reason"] == "idle_timeout" and final["text"]
    assert final["seq"] == len(chunks) - 1 and final["end_of_stream"] is False and "latency" not in final
    assert len([r for r in results if r["type"] == "partial"]) == len(chunks)
    worker.wait_for(lambda: worker.metric("workers_asr_segments_total", reason="idle_timeout") == 1, 10, "counting it")


SOFT_SIX = SHARED / "fsdd" / "recordings" / "6_jackson_11.wav"
SEVEN_HEARD_AS_THEN = SHARED / "fsdd" / "recordings" / "7_jackson_2.wav"
DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
"""A "six" the blank outweighs in every frame: greedy decoding hears nothing, the search over its soft
frames finds the word."""


@pytest.mark.skipif(not SOFT_SIX.exists(), reason="../shared/data/asr not present")
def test_a_soft_word_and_a_prompted_digit_are_found_and_quiet_noise_makes_no_word(kafka, topics, start_worker) -> None:
    start_worker("asr", kafka, topics)
    rate, chunks = wav_chunks(SOFT_SIX, 0.1, realtime=False)
    finals = run_mic(kafka, chunks, rate, stream_id="soft-six", out=open("/dev/null", "w"),
                     topics=(topics["input"], topics["output"]), final_timeout_s=60)
    assert " ".join(f["text"] for f in finals) == "six" == transcribe([SOFT_SIX])[SOFT_SIX.name]
    # the streaming model's own search heard "then" in open dictation; the second pass hears the digit, and
    # a client that asked for a digit sends the digits as its phrase list
    assert transcribe([SEVEN_HEARD_AS_THEN])[SEVEN_HEARD_AS_THEN.name] == "seven"
    rate, chunks = wav_chunks(SEVEN_HEARD_AS_THEN, 0.1, realtime=False)
    finals = run_mic(kafka, chunks, rate, stream_id="digit-prompt", out=open("/dev/null", "w"),
                     topics=(topics["input"], topics["output"]), final_timeout_s=60, phrases=DIGITS)
    assert [f["text"] for f in finals] == ["seven"] == [transcribe([SEVEN_HEARD_AS_THEN], DIGITS)[SEVEN_HEARD_AS_THEN.name]]
    hiss = np.random.default_rng(0).normal(0, 10 ** (-50 / 20), 16000 * 3).astype(np.float32)  # -50 dBFS
    seen: list[dict] = []
    run_mic(kafka, iter(np.split(hiss, 30)), 16000, stream_id="hiss", out=open("/dev/null", "w"),
            topics=(topics["input"], topics["output"]), on_result=seen.append, final_timeout_s=60)
    finals = [(r["text"], r["reason"]) for r in seen if r["type"] == "final"]
    assert finals == [("", "end_of_stream")]  # it once got a final "i" at 0.8 s
    assert len(seen) == 31 and all(r["text"] == "" for r in seen)  # 30 partials and the end's final
