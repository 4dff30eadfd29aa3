"""The intent model as the worker and ``workers predict bot`` both use it: tokenizer + ONNX + policy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from workers.bot.policy import DialoguePolicy
from workers.bot.settings import DEFAULT_LENGTH_GROUP
from workers.runtime.artifact import Manifest
from workers.runtime.onnx_model import OnnxModel
from workers.runtime.text import WordPieceTokenizer
from workers.settings import OnnxSettings


def length_groups(encoded: list[list[int]], size: int = DEFAULT_LENGTH_GROUP) -> list[list[int]]:
    """Indices of ``encoded`` sorted by length, cut into groups of at most ``size`` (one model call each;
    0: one group)."""
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    size = size or max(1, len(order))
    return [order[start : start + size] for start in range(0, len(order), size)]


class BotManifest(Manifest):
    """The intent model's manifest: its classes and the dialogue policy's thresholds and replies."""

    labels: list[str]
    policy: dict[str, Any]


class IntentModel:
    def __init__(self, model_dir: str | Path, onnx: OnnxSettings, length_group: int = DEFAULT_LENGTH_GROUP) -> None:
        self.length_group = length_group
        self.onnx = OnnxModel(model_dir, onnx)
        manifest = BotManifest.load(model_dir)
        self.labels: list[str] = manifest.labels
        self.tokenizer = WordPieceTokenizer.from_file(Path(model_dir) / "vocab.txt", manifest.policy["max_tokens"])
        self.policy = DialoguePolicy.from_manifest(self.labels, manifest.policy)

    def probabilities(self, texts: list[str]) -> np.ndarray:
        """Probabilities per text, in order. The texts run in groups of similar length (``length_group``):
        padding a whole batch to its longest text wasted most of the compute on CPUs (docs/workers/bot.md)."""
        encoded = [self.tokenizer.encode(t) for t in texts]
        out = np.empty((len(texts), len(self.labels)), dtype=np.float32)
        run_s = 0.0
        for group in length_groups(encoded, self.length_group):
            ids, mask = self.tokenizer.pad([encoded[i] for i in group])
            out[group] = self.onnx.run({"input_ids": ids, "attention_mask": mask})["probabilities"]
            run_s += self.onnx.last_run_s
        self.onnx.last_run_s = run_s
        return out

    def warmup(self, runs: int) -> None:
        feeds = dict(zip(("input_ids", "attention_mask"), self.tokenizer.encode_batch(["how do I activate my card"] * 8),
                         strict=True))
        self.onnx.warmup(runs, feeds)
