"""The speech worker's own Prometheus series, beside the engine's (:mod:`workers.metrics`)."""

from __future__ import annotations

from prometheus_client import Counter

CHUNKS = Counter(
    "workers_asr_chunks_total", "Audio chunks by what the stream made of them (accepted, duplicate, gap_filled).",
    ["worker", "outcome"],
)
AUDIO = Counter("workers_asr_audio_seconds_total", "Seconds of audio recognised.", ["worker"])
FINAL_SEARCHES = Counter(
    "workers_asr_final_searches_total", "Finals' beam searches off the batch loop, by the beam width they ran "
    "with: asr.busy_beam while the search processes are backlogged, 0 when the search failed (greedy final).",
    ["worker", "beam"],
)
FINALS_BY_SHARED_CALL = Counter(
    "workers_asr_finals_by_shared_call_total", "Finals' second passes off the batch loop, by how many finals the "
    "call that read them read together (asr.second_pass_batch): 1 alone, more when finals of one window waited.",
    ["worker", "shared"],
)
SEGMENTS = Counter(
    "workers_asr_segments_total", "Final segments emitted, by why they ended.", ["worker", "reason"]
)
EARLY_SECOND_PASSES = Counter(
    "workers_asr_early_second_passes_total", "Second passes started when a segment's speech had ended, before its "
    "endpoint: used (its final came with no more speech), discarded (the speaker went on: the work was wasted).",
    ["worker", "outcome"],
)
