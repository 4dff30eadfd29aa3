"""Train the fraud model in TensorFlow, measure it on a later time window, export it to ONNX with a parity check.

``workers train fraud [--out DIR]`` runs :func:`train`. The held-out set is generated after the training
window with another seed (other cards, later traffic), and a rule a fraud team might start from is
measured beside the model on it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from pathlib import Path
from typing import Any

import numpy as np

from fraud_scoring.data import RESELLABLE, Transaction, generate, velocity
from fraud_scoring.features import FEATURES, feature_vector
from fraud_scoring.settings import FraudSettings
from workers.runtime.artifact import write_manifest

log = logging.getLogger(__name__)
MODEL_DIR = Path(__file__).parent / "model"
SEED = 11


def dataset(transactions: list[Transaction], window_s: float) -> tuple[np.ndarray, np.ndarray]:
    recent = velocity(transactions, window_s)
    x = np.stack([feature_vector(t.amount, t.ts, t.distance_km, t.card_present, t.merchant_category, int(n))
                  for t, n in zip(transactions, recent, strict=True)])
    return x, np.array([t.fraud for t in transactions], np.float32)


def rule_score(t: Transaction) -> float:
    """The rule baseline: one point each for a large amount, card not present, far from home, resellable goods."""
    return float(t.amount > 200) + float(not t.card_present) + float(t.distance_km > 100) + float(
        t.merchant_category in RESELLABLE)


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Mann-Whitney form, ties counted half."""
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    positives = labels > 0.5
    n_pos, n_neg = int(positives.sum()), int((~positives).sum())
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def build_model(train_x: np.ndarray) -> Any:
    import keras

    inputs = keras.Input(shape=(len(FEATURES),), name="features", dtype="float32")
    normalise = keras.layers.Normalization()
    normalise.adapt(train_x)
    h = keras.layers.Dense(32, activation="relu")(normalise(inputs))
    h = keras.layers.Dense(16, activation="relu")(h)
    outputs = keras.layers.Dense(1, activation="sigmoid", name="fraud_probability")(h)
    return keras.Model(inputs, outputs, name="fraud")


def train(out_dir: Path = MODEL_DIR, epochs: int = 12, events: int = 60_000) -> dict[str, Any]:
    import keras
    import tensorflow as tf

    from export import export_keras

    keras.utils.set_random_seed(SEED)
    window_s = FraudSettings().velocity_window_s
    history = generate(events, seed=SEED)
    later = generate(events // 3, seed=SEED + 1, start_ts=history[-1].ts + 3600)  # held out by time and by card
    train_x, train_y = dataset(history, window_s)
    test_x, test_y = dataset(later, window_s)
    model = build_model(train_x)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="binary_crossentropy")
    model.fit(train_x, train_y, epochs=epochs, batch_size=256, verbose=0, validation_split=0.1)
    scores = model.predict(test_x, batch_size=4096, verbose=0)[:, 0]
    threshold = FraudSettings().alert_threshold
    flagged = scores >= threshold
    metrics = {"held_out_transactions": len(later), "held_out_fraud": int(test_y.sum()),
               "roc_auc": round(roc_auc(test_y, scores), 4),
               "rule_baseline_roc_auc": round(roc_auc(test_y, np.array([rule_score(t) for t in later])), 4),
               "precision_at_threshold": round(float(test_y[flagged].mean()) if flagged.any() else 0.0, 4),
               "recall_at_threshold": round(float(flagged[test_y > 0.5].mean()), 4), "threshold": threshold}
    log.info("fraud: held-out %s", metrics)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = export_keras(model, [tf.TensorSpec([None, len(FEATURES)], tf.float32, name="features")],
                          out_dir / "model.onnx", samples={"features": test_x[:512]})
    return write_manifest(out_dir, {
        "name": "fraud", "version": dt.date.today().strftime("%Y%m%d") + "-1",
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "inputs": report.inputs, "outputs": report.outputs,
        "data": {"source": "fraud_scoring.data.generate (synthetic)", "train": len(history),
                 "seed": SEED, "sha256": hashlib.sha256(train_x.tobytes()).hexdigest(), "features": list(FEATURES)},
        "metrics": metrics, "export": report.as_manifest(),
    })
