"""A small real classifier for the generic tensor worker and the demo: handwritten digits (8x8).

Data: the UCI "Optical Recognition of Handwritten Digits" test set as bundled by scikit-learn
(``load_digits``: 1,797 images, 10 classes, CC BY 4.0), so training needs no download.
``workers train digits`` reproduces the committed artifact in seconds.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from models import ARTIFACTS
from workers.runtime.artifact import write_manifest

log = logging.getLogger(__name__)
NAME = "digits"
SEED = 7


def load_data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, str]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = digits.data.astype(np.float32)  # 64 pixel intensities in 0..16
    y = digits.target.astype(np.int64)
    digest = hashlib.sha256(x.tobytes() + y.tobytes()).hexdigest()
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, stratify=y, random_state=SEED)
    return x_train, x_test, y_train, y_test, digest


def build_model() -> Any:
    import keras

    inputs = keras.Input(shape=(64,), name="pixels", dtype="float32")
    h = keras.layers.Rescaling(1.0 / 16.0)(inputs)
    h = keras.layers.Dense(128, activation="relu")(h)
    h = keras.layers.Dropout(0.2)(h)
    h = keras.layers.Dense(64, activation="relu")(h)
    outputs = keras.layers.Dense(10, activation="softmax", name="probabilities")(h)
    return keras.Model(inputs, outputs, name=NAME)


def train(out_dir: Path = ARTIFACTS / NAME, epochs: int = 60, version: str | None = None) -> dict[str, Any]:
    """Train, evaluate on the held-out quarter, export with a parity check, write the artifact."""
    import keras
    import tensorflow as tf

    from export import export_keras

    keras.utils.set_random_seed(SEED)
    x_train, x_test, y_train, y_test, digest = load_data()
    model = build_model()
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=epochs, batch_size=32, verbose=0, validation_split=0.1)
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    log.info("digits: held-out accuracy %.4f on %d images", accuracy, len(y_test))

    out_dir.mkdir(parents=True, exist_ok=True)
    report = export_keras(
        model,
        [tf.TensorSpec([None, 64], tf.float32, name="pixels")],
        out_dir / "model.onnx",
        samples={"pixels": x_test[:256]},
    )
    manifest = {
        "name": NAME,
        "version": version or dt.date.today().strftime("%Y%m%d") + "-1",
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "inputs": report.inputs,
        "outputs": report.outputs,
        "labels": [str(i) for i in range(10)],
        "data": {
            "source": "UCI Optical Recognition of Handwritten Digits (scikit-learn load_digits)",
            "licence": "CC BY 4.0",
            "sha256": digest,
            "train": len(y_train),
            "test": len(y_test),
        },
        "metrics": {"test_accuracy": round(float(accuracy), 4)},
        "export": report.as_manifest(),
    }
    write_manifest(out_dir, manifest)
    with open(out_dir / "samples.jsonl", "w") as f:  # held-out images, for the demo's traffic
        for i, (x, y) in enumerate(zip(x_test[:200], y_test[:200], strict=True)):
            f.write(json.dumps({"id": f"digit-{i}", "inputs": {"pixels": x.astype(int).tolist()}, "label": str(y)}) + "\n")
    return manifest
