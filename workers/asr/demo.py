"""``workers demo`` traffic of the speech worker: the bundled WAVs streamed in real time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from workers.devtools.traffic import MALFORMED_EVERY, DemoTraffic
from workers.transport.records import OutgoingRecord


def speech_workload(rate: float) -> DemoTraffic:
    """Sample WAVs streamed in real time (one chunk per message, 1/rate s of audio), one stream per file."""
    from workers.asr.audio import float_to_pcm16, read_audio
    from workers.asr.protocol import chunk_headers

    samples = sorted((Path(__file__).parent / "samples").glob("*.wav"))
    truth = {"LJ001-0006": "and it is worth mention in passing that as an example of fine typography",
             "librivox-0880": "he was not an ill disposed young man"}
    clips = [(p.stem, *read_audio(p)) for p in samples]
    cursor = {"clip": 0, "position": 0, "seq": 0, "stream": 0}
    workload: DemoTraffic

    def make(i: int) -> tuple[OutgoingRecord, str | None]:
        if i % MALFORMED_EVERY == MALFORMED_EVERY - 1:
            return OutgoingRecord("asr.audio", b"\x01\x02\x03", b"broken", chunk_headers(0, 16000)), None
        name, audio, sample_rate = clips[cursor["clip"]]
        stream = f"talk-{cursor['stream']}-{name}"
        step = max(1, int(sample_rate / rate))
        chunk = audio[cursor["position"]:cursor["position"] + step]
        end = cursor["position"] + step >= len(audio)
        record = OutgoingRecord("asr.audio", float_to_pcm16(chunk), stream.encode(),
                                chunk_headers(cursor["seq"], sample_rate, end))
        workload.expected[stream] = truth.get(name, "?")
        cursor["position"], cursor["seq"] = cursor["position"] + step, cursor["seq"] + 1
        if end:
            cursor.update(clip=(cursor["clip"] + 1) % len(clips), position=0, seq=0, stream=cursor["stream"] + 1)
        return record, stream

    shown: dict[str, str] = {}

    def show(result: dict[str, Any], expected: dict[str, str]) -> tuple[str, bool]:
        if result["type"] == "partial" and shown.get(result["stream_id"]) == result["text"]:
            return "", True  # an unchanged partial is not worth a line
        shown[result["stream_id"]] = result["text"]
        if result["type"] == "final":
            return (f"{result['stream_id'][:22]:<22} FINAL \"{result.get('display', result['text'])}\"\n"
                    f"{'':<32}said  \"{expected.get(result['stream_id'], '?')}\""), True
        return f"{result['stream_id'][:22]:<22} #{result['seq']:<3} {result['text'][-70:]}", True

    workload = DemoTraffic("asr", "speech recognition", "asr.audio", "asr.transcripts", make, show,
                        answers=lambda r: int(r["type"] == "partial" or r.get("end_of_stream", False)))
    return workload
