"""The customer-service chat bot workload (docs/workers/bot.md)."""

from models import ARTIFACTS
from workers.bot.commands import COMMANDS
from workers.bot.settings import BotSettings
from workers.plugin import WorkloadSpec

SPEC = WorkloadSpec(
    name="bot",
    description="customer-service chat: chat.messages -> chat.replies (intent, confidence, reply, handoff)",
    handler="workers.bot.handler:BotHandler",
    default_model=ARTIFACTS / "bot",
    settings=BotSettings,
    commands=COMMANDS,
    demo="workers.bot.demo:chat_workload",
    bench="workers.bot.bench:BENCH",
)
