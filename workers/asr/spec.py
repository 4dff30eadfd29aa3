"""The streaming speech recognition workload (docs/workers/asr.md, protocol in docs/asr-protocol.md)."""

from models import ARTIFACTS
from workers.asr.commands import COMMANDS
from workers.asr.settings import AsrSettings
from workers.plugin import WorkloadSpec

SPEC = WorkloadSpec(
    name="asr",
    description="streaming speech recognition: asr.audio (PCM16 chunks) -> asr.transcripts (partials, finals)",
    handler="workers.asr.handler:AsrHandler",
    default_model=ARTIFACTS / "asr",
    settings=AsrSettings,
    metrics="workers.asr.metrics",
    commands=COMMANDS,
    demo="workers.asr.demo:speech_workload",
    bench="workers.asr.bench:BENCH",
)
