"""Model-only ONNX Runtime timings per workload, batch size and execution provider, as one JSON object.

For the first session with a GPU (``deploy/gpu/measure.sh models``): each committed model loaded as its
worker loads it (``OnnxModel``: the worker's session options), timed on the batches its worker gives it
(``workers.devtools.bench.workloads``), once with ``CUDAExecutionProvider`` first and once on the CPU alone. Each
row says which provider the session really got; ONNX Runtime's own warnings (Memcpy nodes added between
providers, nodes left on the CPU) go to stderr, which ``measure.sh`` keeps beside the JSON.

    python3 deploy/gpu/model_only.py [--seconds S] [--workloads asr,clicks,bot]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import onnxruntime as ort  # noqa: E402

from workers.asr.bench import asr_model_only  # noqa: E402
from workers.bot.bench import bot_model_only  # noqa: E402
from workers.clicks.bench import clicks_model_only  # noqa: E402
from workers.settings import OnnxSettings  # noqa: E402

BATCHES = {"asr": [1, 16, 64, 256, 512, 1024], "clicks": [1, 64, 512, 4096], "bot": [1, 8, 64, 256]}
TIMERS = {"asr": asr_model_only, "clicks": clicks_model_only, "bot": bot_model_only}
class LoadedOn(logging.Handler):
    """Remembers the provider the last session really got (``OnnxModel`` logs it once loaded)."""

    provider = ""

    def emit(self, record: logging.LogRecord) -> None:
        if record.name == "workers.runtime.onnx_model" and " loaded on " in str(record.msg):
            self.provider = str(record.args[2]) if isinstance(record.args, tuple) else ""


PROVIDERS = {"cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"], "cpu": ["CPUExecutionProvider"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="timing per workload, batch and provider")
    parser.add_argument("--workloads", default="asr,clicks,bot")
    args = parser.parse_args()
    logging.basicConfig(level="INFO", format="%(name)s: %(message)s")
    loaded = LoadedOn()
    logging.getLogger("workers.runtime.onnx_model").addHandler(loaded)
    report: dict[str, object] = {"onnxruntime": ort.__version__, "available": ort.get_available_providers(),
                                 "rows": []}
    rows: list[dict[str, object]] = report["rows"]  # type: ignore[assignment]
    for workload in args.workloads.split(","):
        for provider, preference in PROVIDERS.items():
            if provider == "cuda" and "CUDAExecutionProvider" not in report["available"]:  # type: ignore[operator]
                continue
            for batch in BATCHES[workload]:
                print(f"== {workload} {provider} batch {batch}", file=sys.stderr, flush=True)
                started = time.perf_counter()
                timing = TIMERS[workload](batch, args.seconds, OnnxSettings(providers=preference))
                rows.append({"workload": workload, "provider": provider, "session_on": loaded.provider, **timing,
                             "wall_s": round(time.perf_counter() - started, 1)})
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
