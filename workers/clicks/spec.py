"""The behaviour prediction workload: click events -> next items, purchase probability (docs/workers/clicks.md)."""

from models import ARTIFACTS
from workers.clicks.commands import COMMANDS
from workers.plugin import WorkloadSpec

SPEC = WorkloadSpec(
    name="clicks",
    description="behaviour prediction: clicks.events -> clicks.predictions (next items, purchase probability)",
    handler="workers.clicks.handler:ClicksHandler",
    default_model=ARTIFACTS / "clicks",
    commands=COMMANDS,
    demo="workers.clicks.demo:clicks_workload",
    bench="workers.clicks.bench:BENCH",
)
