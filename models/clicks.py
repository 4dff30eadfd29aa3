"""Session model for click streams: a GRU4Rec-style next-item model with a purchase-intent head.

Trained on whole sessions (Keras ``RNN`` over the sequence) and exported as a *one-step* graph that
shares the same layers::

    item [batch] int64, event [batch] int64, state [batch, H] float32
        -> scores [batch, items + 1] (softmax), purchase [batch, 1], next_state [batch, H]

so the worker does O(1) work per event and streaming output equals offline output by construction
(``tests/models/test_clicks_model.py`` checks it). The purchase head is trained only when the log has
purchase events. Sessions are split by start time: the latest ``test_fraction`` are held out and
reported for the model and for the successor baseline side by side.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from models.clicks_blend import choose_blend, evaluation_table, fit_counts, format_table, summary
from workers.clicks.baseline import SuccessorBaseline
from workers.clicks.evaluate import evaluate
from workers.clicks.events import (EVENT_TYPES, PURCHASE, Event, event_index, purchase_after, read_events, sessions,
                                   split_by_time)
from workers.clicks.model import COUNTS, SessionManifest, SessionModel
from workers.runtime.artifact import write_manifest

log = logging.getLogger(__name__)
NAME = "clicks"
WINDOW = 50
WARMUP = 10  # positions of context a window of a long session re-reads without loss


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build_models(n_items: int, dim: int, hidden: int, dropout: float) -> tuple[Any, Any]:
    """(sequence model for training, one-step model for export), sharing every weight."""
    import keras

    item_embedding = keras.layers.Embedding(n_items + 1, dim, name="item_embedding")
    event_embedding = keras.layers.Embedding(len(EVENT_TYPES) + 1, dim, name="event_embedding")
    cell = keras.layers.GRUCell(hidden, name="gru")
    drop_in = keras.layers.Dropout(dropout)
    drop_out = keras.layers.Dropout(dropout)
    scores_layer = keras.layers.Dense(n_items + 1, name="next_item")
    purchase_layer = keras.layers.Dense(1, activation="sigmoid", name="purchase")

    def heads(h: Any, x: Any) -> tuple[Any, Any]:
        features = drop_out(keras.layers.Concatenate()([h, x]))
        return scores_layer(features), purchase_layer(features)

    items = keras.Input((None,), dtype="int64", name="items")
    events = keras.Input((None,), dtype="int64", name="events")
    x = drop_in(keras.layers.Add()([item_embedding(items), event_embedding(events)]))
    h = keras.layers.RNN(cell, return_sequences=True)(x)
    logits, purchase = heads(h, x)
    sequence = keras.Model({"items": items, "events": events},
                           {"next_item": logits, "purchase": purchase}, name="clicks_sequence")

    item = keras.Input((), dtype="int64", name="item")
    event = keras.Input((), dtype="int64", name="event")
    state = keras.Input((hidden,), dtype="float32", name="state")
    x1 = keras.layers.Add()([item_embedding(item), event_embedding(event)])
    h1, _ = cell(x1, [state])
    logits1, purchase1 = heads(h1, x1)
    scores = keras.layers.Softmax(name="scores")(logits1)
    step = keras.Model([item, event, state],
                       {"scores": scores, "purchase": purchase1, "next_state": keras.layers.Identity(name="next_state")(h1)},
                       name="clicks_step")
    return sequence, step


def _windows(encoded: list[tuple[np.ndarray, np.ndarray, np.ndarray]], unknown_rate: float, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Sessions -> fixed windows. Long sessions are cut into overlapping windows whose first
    ``WARMUP`` positions only rebuild context; targets of unknown items (0) are masked."""
    rows = []
    for items, events, buys in encoded:
        n = len(items)
        start = 0
        while True:
            end = min(n, start + WINDOW)
            rows.append((items[start:end], events[start:end], buys[start:end],
                         items[start + 1 : end + 1], 0 if start == 0 else WARMUP))
            if end >= n:
                break
            start = end - WARMUP
    m = len(rows)
    data = {name: np.zeros((m, WINDOW), dtype) for name, dtype in
            (("items", np.int64), ("events", np.int64), ("targets", np.int64), ("buys", np.float32), ("weight", np.float32))}
    for r, (items, events, buys, targets, skip) in enumerate(rows):
        n = len(items)
        noisy = np.where(rng.random(n) < unknown_rate, 0, items)  # teaches the "unknown item" embedding
        data["items"][r, :n] = noisy
        data["events"][r, :n] = events
        data["targets"][r, : len(targets)] = targets
        data["buys"][r, :n] = buys
        data["weight"][r, skip:n] = 1.0
    data["item_weight"] = data["weight"] * (data["targets"] > 0)
    return data


def _encode(grouped: dict[str, list[Event]], index: dict[str, int]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    return [(np.array([index.get(e.item_id, 0) for e in evs], np.int64),
             np.array([event_index(e.event_type) for e in evs], np.int64),
             np.array(purchase_after(evs), np.float32)) for evs in grouped.values()]


def sizes_for(n_events: int) -> dict[str, int]:
    """Embedding width, GRU width and batch size for a log of ``n_events``: small logs get a small model that
    does not memorise them, large ones a wider model and larger batches (epochs stop early on validation)."""
    dim = 32 if n_events < 200_000 else 64 if n_events < 3_000_000 else 128
    return {"dim": dim, "hidden": 2 * dim, "batch_size": 64 if n_events < 1_000_000 else 256}


def train(
    events_file: Path,
    out: Path,
    epochs: int = 30,
    dim: int | None = None,
    hidden: int | None = None,
    dropout: float = 0.25,
    test_fraction: float = 0.1,
    max_items: int = 50_000,
    seed: int = 0,
) -> dict[str, Any]:
    import keras
    import tensorflow as tf

    from export.keras_to_onnx import export_keras
    from workers.settings import OnnxSettings

    started = time.time()
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    grouped = {sid: evs for sid, evs in sessions(read_events(events_file)).items() if len(evs) >= 2}
    sizes = sizes_for(sum(len(evs) for evs in grouped.values()))
    dim, hidden = dim or sizes["dim"], hidden or sizes["hidden"]
    train_sessions, test_sessions = split_by_time(grouped, test_fraction)
    fit_sessions, val_sessions = split_by_time(train_sessions, 0.1)
    popularity = Counter(e.item_id for evs in train_sessions.values() for e in evs)
    items = [item for item, _ in sorted(popularity.items(), key=lambda kv: (-kv[1], kv[0]))[:max_items]]
    index = {item: i + 1 for i, item in enumerate(items)}
    has_purchase = any(e.event_type == PURCHASE for evs in train_sessions.values() for e in evs)
    log.info("%d sessions (%d train, %d test), %d items, purchase head: %s",
             len(grouped), len(train_sessions), len(test_sessions), len(items), has_purchase)

    def arrays(group: dict[str, list[Event]], unknown_rate: float) -> tuple[dict, dict, dict]:
        w = _windows(_encode(group, index), unknown_rate, rng)
        x = {"items": w["items"], "events": w["events"]}
        y = {"next_item": w["targets"], "purchase": w["buys"][..., None]}
        sw = {"next_item": w["item_weight"], "purchase": w["weight"] * (1.0 if has_purchase else 0.0)}
        return x, y, sw

    sequence, step = build_models(len(items), dim, hidden, dropout)
    sequence.compile(
        optimizer=keras.optimizers.Adam(2e-3, clipnorm=1.0),
        loss={"next_item": keras.losses.SparseCategoricalCrossentropy(from_logits=True),
              "purchase": keras.losses.BinaryCrossentropy()},
        loss_weights={"next_item": 1.0, "purchase": 0.5 if has_purchase else 0.0},
    )
    x, y, sw = arrays(fit_sessions, 0.02)
    vx, vy, vsw = arrays(val_sessions, 0.0)
    history = sequence.fit(
        x, y, sample_weight=sw, validation_data=(vx, vy, vsw), batch_size=sizes["batch_size"], epochs=epochs, verbose=2,
        callbacks=[keras.callbacks.EarlyStopping("val_next_item_loss", mode="min", patience=2, restore_best_weights=True)],
    )
    train_s = time.time() - started

    out.mkdir(parents=True, exist_ok=True)
    sample = next(iter(test_sessions.values()))[:8]
    samples = {"item": np.array([index.get(e.item_id, 0) for e in sample], np.int64),
               "event": np.array([event_index(e.event_type) for e in sample], np.int64),
               "state": rng.normal(0, 0.3, (len(sample), hidden)).astype(np.float32)}
    signature = [tf.TensorSpec([None], tf.int64, name="item"), tf.TensorSpec([None], tf.int64, name="event"),
                 tf.TensorSpec([None, hidden], tf.float32, name="state")]
    report = export_keras(step, signature, out / "model.onnx", samples, atol=1e-4)
    (out / "items.json").write_text(json.dumps(items))
    version = f"{NAME}-{dt.datetime.now(dt.UTC):%Y%m%d%H%M%S}"
    manifest: dict[str, Any] = {
        "name": NAME, "version": version, "created": dt.datetime.now(dt.UTC).isoformat(),
        "inputs": report.inputs, "outputs": report.outputs,
        "session": {"kind": "gru", "state_size": hidden, "has_purchase_head": has_purchase,
                    "event_types": list(EVENT_TYPES), "items": len(items)},
        "data": {"events_file": Path(events_file).name, "sha256": _file_digest(Path(events_file)),
                 "sessions": len(grouped), "train_sessions": len(train_sessions), "test_sessions": len(test_sessions),
                 "split": f"latest {test_fraction:.0%} of sessions by start time are the test set"},
        "training": {"epochs_run": len(history.history["loss"]), "seconds": round(train_s, 1),
                     "dim": dim, "hidden": hidden, "dropout": dropout, "seed": seed, "batch_size": sizes["batch_size"],
                     "max_epochs": epochs},
        "export": report.as_manifest(),
        "metrics": {},
    }
    write_manifest(out, manifest, SessionManifest)

    model = SessionModel(out, OnnxSettings())
    blend = choose_blend(model, fit_counts(model, fit_sessions), val_sessions)
    counts = fit_counts(model, train_sessions)  # the served counts know the validation window too
    counts.save(out / COUNTS)
    manifest["session"] |= {"kind": "hybrid", "blend": blend["weights"]}
    manifest["training"]["blend"] = blend
    write_manifest(out, manifest, SessionManifest)
    model = SessionModel(out, OnnxSettings())
    table = evaluation_table(model, counts, test_sessions)
    manifest["metrics"] = {"model": table["hybrid"], "baseline_successor": table["successor"], "table": table,
                           "summary": summary(table, "hybrid"),
                           "measured_on": "the exported ONNX graph and the served blend, through the worker's step, on "
                           "the test window (the latest sessions by start time); every position but a session's last; "
                           "items unseen in training are misses; baselines fitted on the training window"}
    manifest["training"]["total_seconds"] = round(time.time() - started, 1)
    write_manifest(out, manifest, SessionManifest)
    log.info("test window:\n%s", format_table(table, "hybrid"))
    return manifest


def evaluate_file(events_file: Path, model_dir: Path, test_file: Path | None = None,
                  test_fraction: float = 0.1) -> dict[str, Any]:
    """``workers eval clicks``: every baseline and the served scorer of ``model_dir`` on the test sessions.

    Without ``test_file`` the split is the one training makes: the latest ``test_fraction`` of the file's
    sessions by start time are the test set, the rest fit the baselines. With it, the whole file fits the
    baselines and ``test_file`` is the test set. The served scorer is the artifact as the worker loads it."""
    from workers.settings import OnnxSettings

    grouped = {sid: evs for sid, evs in sessions(read_events(events_file)).items() if len(evs) >= 2}
    if test_file is None:
        train_sessions, test_sessions = split_by_time(grouped, test_fraction)
    else:
        train_sessions = grouped
        test_sessions = {sid: evs for sid, evs in sessions(read_events(test_file)).items() if len(evs) >= 2}
    model = SessionModel(model_dir, OnnxSettings())
    served = "hybrid" if model.counts is not None else "gru"
    table = evaluation_table(model, fit_counts(model, train_sessions), test_sessions)
    return {"events": str(events_file), "test": str(test_file) if test_file else f"latest {test_fraction:.0%} of sessions",
            "model": model.version, "served": served, "table": table, "summary": summary(table, served)}


def train_baseline(events_file: Path, out: Path, test_fraction: float = 0.1) -> dict[str, Any]:
    """The successor baseline on the same split, in a model directory ``workers predict clicks`` reads."""
    grouped = {sid: evs for sid, evs in sessions(read_events(events_file)).items() if len(evs) >= 2}
    train_sessions, test_sessions = split_by_time(grouped, test_fraction)
    baseline = SuccessorBaseline.fit(train_sessions, version=f"{NAME}-baseline-{dt.datetime.now(dt.UTC):%Y%m%d%H%M%S}")
    metrics = {"baseline_successor": evaluate(baseline, test_sessions)}
    baseline.save(out, metrics)
    return {"metrics": metrics}


def keras_step_from_onnx(model_dir: Path) -> Any:
    """The TensorFlow one-step model with the weights of an exported ``model.onnx``, checked for parity.

    The committed artifact keeps only the ONNX graph; benchmarks compare our serving path with plain
    TensorFlow serving loops, which need the same model in TensorFlow. tf2onnx keeps the Keras layer
    names in its initializer names, so each weight is found by layer and shape.
    """
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper

    model_dir = Path(model_dir)
    manifest = SessionManifest.load(model_dir)
    training = manifest.section("training")
    n_items = manifest.session["items"]
    weights = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(model_dir / "model.onnx")).graph.initializer}

    def find(layer: str, shape: tuple[int, ...], exclude: set[str] = frozenset()) -> list[str]:
        return sorted(n for n, w in weights.items() if f"/{layer}_1/" in n and w.shape == shape and n not in exclude)

    _, step = build_models(n_items, training["dim"], training["hidden"], 0.0)
    dim, hidden = training["dim"], training["hidden"]
    cell = step.get_layer("gru")
    biases = find("gru", (3 * hidden,))
    assert len(biases) == 2, biases
    assignments = {
        "item_embedding": [weights[find("item_embedding", (n_items + 1, dim))[0]]],
        "event_embedding": [weights[find("event_embedding", (len(EVENT_TYPES) + 1, dim))[0]]],
        "next_item": [weights[find("next_item", (hidden + dim, n_items + 1))[0]],
                      weights[find("next_item", (n_items + 1,))[0]]],
        "purchase": [weights[find("purchase", (hidden + dim, 1))[0]], weights[find("purchase", (1,))[0]]],
    }
    for name, values in assignments.items():
        step.get_layer(name).set_weights(values)
    kernel = weights[find("gru", (dim, 3 * hidden))[0]]
    recurrent = weights[find("gru", (hidden, 3 * hidden))[0]]

    session = ort.InferenceSession(str(model_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feeds = {"item": rng.integers(0, n_items + 1, 16).astype(np.int64), "event": rng.integers(0, 5, 16).astype(np.int64),
             "state": rng.normal(0, 0.3, (16, hidden)).astype(np.float32)}
    want = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds), strict=True))
    for order in (biases, biases[::-1]):  # which bias row is the input one is not in the names: let parity decide
        cell.set_weights([kernel, recurrent, np.stack([weights[order[0]], weights[order[1]]])])
        got = step([feeds["item"], feeds["event"], feeds["state"]], training=False)
        if all(np.allclose(np.asarray(got[k]), want[k], atol=1e-4) for k in want):
            return step
    raise AssertionError(f"{model_dir}: no TensorFlow model with these weights reproduces the ONNX outputs")
