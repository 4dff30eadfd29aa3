"""The intent model as the worker and ``workers predict bot`` both use it: tokenizer + ONNX + policy."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from workers.bot.policy import DialoguePolicy
from workers.runtime.onnx_model import OnnxModel
from workers.runtime.text import WordPieceTokenizer
from workers.settings import OnnxSettings


class IntentModel:
    def __init__(self, model_dir: str | Path, onnx: OnnxSettings) -> None:
        self.onnx = OnnxModel(model_dir, onnx)
        manifest = json.loads((Path(model_dir) / "manifest.json").read_text())
        self.labels: list[str] = manifest["labels"]
        self.tokenizer = WordPieceTokenizer.from_file(Path(model_dir) / "vocab.txt", manifest["policy"]["max_tokens"])
        self.policy = DialoguePolicy.from_manifest(self.labels, manifest["policy"])

    def probabilities(self, texts: list[str]) -> np.ndarray:
        ids, mask = self.tokenizer.encode_batch(texts)
        return self.onnx.run({"input_ids": ids, "attention_mask": mask})["probabilities"]

    def warmup(self, runs: int) -> None:
        feeds = dict(zip(("input_ids", "attention_mask"), self.tokenizer.encode_batch(["how do I activate my card"] * 8),
                         strict=True))
        self.onnx.warmup(runs, feeds)
