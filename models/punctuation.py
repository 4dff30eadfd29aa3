"""The finals' punctuation and casing tagger (``workers.asr.punctuation``): training, export, evaluation.

Data: the written form of the LJ Speech transcripts (the normalised column: numbers spelled out, as the
recogniser writes them; public domain) and the Banking77 queries (CC BY 4.0), each line one unit, as a
final is one stretch of speech between pauses. Test: the held-out ASR clips' lines, every tenth other LJ
line, and the Banking77 test split; none of them is trained on (but for a sentence a corpus holds twice). CLINC150 is left out: it is all lower case
without punctuation, so it would only teach the tagger to write nothing.

Model: word embeddings, then four residual dilated convolutions (each word sees 15 words either side), two
heads per word: its case (:data:`workers.asr.punctuation.CASES`) and the mark after it
(:data:`workers.asr.punctuation.MARKS`). Padding is masked to zero at every layer, so a padded batch gives
every line the output it gets alone (the worker sends one final at a time, unpadded).
"""

from __future__ import annotations

import csv
import datetime as dt
import logging
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from models import ARTIFACTS
from models.asr_data import ASR_DATA, DATA, lj_clips
from workers.asr.punctuation import CASES, MARKS, PAD, UNKNOWN, Punctuator, labelled
from workers.asr.text import normalize
from workers.runtime.artifact import write_manifest

log = logging.getLogger(__name__)

NAME = "punctuation"
OUT = ARTIFACTS / "asr" / NAME
Line = list[tuple[str, int, int]]
EXAMPLE = "i was not at dallas on the twenty second was i"
DILATIONS = (1, 2, 4, 8)
WINDOW_WORDS = 1 + 2 * sum(DILATIONS)
"""Words each word's labels see (kernel 3: one step of each dilation either side): 31."""


def lines() -> tuple[list[Line], list[Line], dict[str, list[Line]]]:
    """(training lines, development lines, test sets by name), each line as
    :func:`workers.asr.punctuation.labelled` gives it. The development lines (every twentieth training line)
    choose the epoch; the test sets are only measured."""
    held_out = {c.text for c in lj_clips()[1]}
    train: list[Line] = []
    tests: dict[str, list[Line]] = {"ljspeech_held_out_clips": [], "ljspeech_every_tenth_line": [], "banking77_test": []}
    for n, row in enumerate((ASR_DATA / "ljspeech" / "metadata.csv").read_text(encoding="utf-8").splitlines()):
        text = row.split("|")[2]
        words = labelled(text)
        if not words:
            continue
        if normalize(text) in held_out:
            tests["ljspeech_held_out_clips"].append(words)
        elif n % 10 == 9:
            tests["ljspeech_every_tenth_line"].append(words)
        else:
            train.append(words)
    for split, target in (("train", train), ("test", tests["banking77_test"])):
        with open(DATA / "bot" / "banking77" / f"{split}.csv", newline="", encoding="utf-8") as f:
            target += [labelled(r["text"]) for r in csv.DictReader(f) if not any(ch.isdigit() for ch in r["text"])]
    train = [w for w in train if w]
    return ([w for n, w in enumerate(train) if n % 20 != 19], train[19::20],
            {k: [w for w in v if w] for k, v in tests.items()})


def build(vocabulary: int, dim: int = 64, channels: int = 128, dilations: tuple[int, ...] = DILATIONS) -> Any:
    import keras

    words = keras.Input((None,), dtype="int32", name="words")
    mask = keras.layers.Lambda(lambda w: keras.ops.expand_dims(keras.ops.cast(w > 0, "float32"), -1), name="mask")(words)
    embedded = keras.layers.Dropout(0.3)(keras.layers.Embedding(vocabulary, dim, name="embedding")(words))
    x = keras.layers.Multiply()([embedded, mask])
    x = keras.layers.Concatenate()([x, mask])  # the mask as a feature: where the line ends is visible
    x = keras.layers.Multiply()([keras.layers.Dense(channels, name="project")(x), mask])
    for d in dilations:
        y = keras.layers.Conv1D(channels, 3, dilation_rate=d, padding="same", activation="relu", name=f"conv_{d}")(x)
        x = keras.layers.Multiply()([keras.layers.Add()([x, keras.layers.Dropout(0.2)(y)]), mask])
    case = keras.layers.Dense(len(CASES), activation="softmax", name="case")(x)
    mark = keras.layers.Dense(len(MARKS), activation="softmax", name="mark")(x)
    return keras.Model(words, {"case": case, "mark": mark}, name=NAME)


def _batches(encoded: list[tuple[np.ndarray, np.ndarray, np.ndarray]], size: int, rng: np.random.Generator):
    """Lines of similar length together (little padding), in a new order each epoch."""
    order = sorted(range(len(encoded)), key=lambda i: (len(encoded[i][0]), rng.random()))
    groups = [order[i:i + size] for i in range(0, len(order), size)]
    rng.shuffle(groups)
    for group in groups:
        longest = max(len(encoded[i][0]) for i in group)
        arrays = [np.zeros((len(group), longest), np.int32) for _ in range(3)]
        for row, i in enumerate(group):
            for array, values in zip(arrays, encoded[i], strict=True):
                array[row, :len(values)] = values
        yield arrays


def score(predicted: list[Line], truth: list[Line]) -> dict[str, float]:
    """Per mark, F1 over the words that should carry it or got it; case: accuracy over all words and F1
    of "not lower case"; the whole line right."""
    counts: Counter[str] = Counter()
    for got, want in zip(predicted, truth, strict=True):
        counts["lines"] += 1
        counts["lines_right"] += got == want
        for (_, gc, gm), (_, wc, wm) in zip(got, want, strict=True):
            counts["words"] += 1
            counts["case_right"] += gc == wc
            for name, g, w in (("capital", gc > 0, wc > 0), *((MARKS[m], gm == m, wm == m) for m in (1, 2, 3))):
                counts[f"{name} tp"] += g and w
                counts[f"{name} fp"] += g and not w
                counts[f"{name} fn"] += w and not g
    result = {"words": counts["words"], "case_accuracy": round(counts["case_right"] / counts["words"], 4)}
    for name in ("capital", ",", ".", "?"):
        tp, fp, fn = counts[f"{name} tp"], counts[f"{name} fp"], counts[f"{name} fn"]
        result[f"{name}_f1"] = round(2 * tp / (2 * tp + fp + fn), 4) if tp + fp + fn else None
    result["lines_exact"] = round(counts["lines_right"] / counts["lines"], 4)
    return result


class RuleBaseline:
    """What a client writes without a model: the first word capitalised, a full stop at the end; with
    ``truecase``, every other word in its most frequent training casing ("dallas" -> "Dallas")."""

    def __init__(self, train: list[Line], truecase: bool) -> None:
        seen: dict[str, Counter[int]] = {}
        for line in train:
            for word, case, _ in line:
                seen.setdefault(word, Counter())[case] += 1
        self.cases = {w: c.most_common(1)[0][0] for w, c in seen.items()} if truecase else {}

    def tag(self, words: list[str]) -> Line:
        return [(w, 1 if i == 0 and self.cases.get(w, 0) == 0 else self.cases.get(w, 0), 2 if i == len(words) - 1 else 0)
                for i, w in enumerate(words)]


def evaluate(punctuator: Punctuator, train: list[Line], tests: dict[str, list[Line]]) -> dict[str, Any]:
    """The exported tagger through the worker's :class:`Punctuator` against both baselines, per test set."""
    systems = {"model": None, "baseline_first_word_and_full_stop": RuleBaseline(train, False),
               "baseline_truecase_and_full_stop": RuleBaseline(train, True)}
    report: dict[str, Any] = {}
    for name, test in tests.items():
        report[name] = {"lines": len(test)}
        for system, baseline in systems.items():
            predicted = [baseline.tag([w for w, _, _ in line]) if baseline else _tag(punctuator, line) for line in test]
            report[name][system] = score(predicted, test)
    return report


def _tag(punctuator: Punctuator, line: Line) -> Line:
    words = [w for w, _, _ in line]
    return list(zip(words, *punctuator.tag(words), strict=True))


def train(out: Path = OUT, epochs: int = 30, batch: int = 64, min_count: int = 2, patience: int = 4,
          seed: int = 0) -> dict[str, Any]:
    """Trains until the development loss has not improved for ``patience`` epochs (at most ``epochs``),
    keeps the best epoch's weights, exports, and measures the test sets against the baselines."""
    import keras
    import tensorflow as tf

    from export.keras_to_onnx import export_keras

    started = time.time()
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    fit_lines, dev_lines, tests = lines()
    frequency = Counter(w for line in fit_lines for w, _, _ in line)
    vocabulary = [PAD, UNKNOWN, *sorted(w for w, k in frequency.items() if k >= min_count)]
    ids = {w: i for i, w in enumerate(vocabulary)}

    def encode(line: Line) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        words, cases, marks = zip(*line, strict=True)
        return (np.array([ids.get(w, 1) for w in words], np.int32), np.array(cases, np.int32), np.array(marks, np.int32))

    encoded, dev = [encode(line) for line in fit_lines], [encode(line) for line in dev_lines]
    model = build(len(vocabulary))
    optimizer = keras.optimizers.Adam(2e-3)
    losses = keras.losses.SparseCategoricalCrossentropy(reduction="none")

    def loss_of(words: tf.Tensor, cases: tf.Tensor, marks: tf.Tensor, training: bool) -> tf.Tensor:
        out = model(words, training=training)
        mask = tf.cast(words > 0, tf.float32)
        return tf.reduce_sum((losses(cases, out["case"]) + losses(marks, out["mark"])) * mask) / tf.reduce_sum(mask)

    @tf.function(reduce_retracing=True)
    def step(words: tf.Tensor, cases: tf.Tensor, marks: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            loss = loss_of(words, cases, marks, True)
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        return loss

    evaluate_dev = tf.function(lambda w, c, m: loss_of(w, c, m, False), reduce_retracing=True)
    best: tuple[float, int, list[np.ndarray]] = (np.inf, 0, model.get_weights())

    for epoch in range(epochs):
        total, n = 0.0, 0
        for words, cases, marks in _batches(encoded, batch, rng):
            # 5% of the words become unknown: the worker meets words the vocabulary lacks
            words = np.where((rng.random(words.shape) < 0.05) & (words > 0), 1, words).astype(np.int32)
            total += float(step(tf.constant(words), tf.constant(cases), tf.constant(marks)))
            n += 1
        dev_loss = float(np.mean([evaluate_dev(*map(tf.constant, b)) for b in _batches(dev, 256, np.random.default_rng(0))]))
        log.info("punctuation epoch %d/%d: loss %.4f, development loss %.4f", epoch + 1, epochs, total / n, dev_loss)
        if dev_loss < best[0]:
            best = (dev_loss, epoch + 1, model.get_weights())
        elif epoch + 1 - best[1] >= patience:
            break
    model.set_weights(best[2])

    out.mkdir(parents=True, exist_ok=True)
    (out / "vocab.txt").write_text("\n".join(vocabulary) + "\n", encoding="utf-8")
    sample = next(_batches(encoded[:64], 16, np.random.default_rng(1)))[0]
    report = export_keras(model, [tf.TensorSpec([None, None], tf.int32, name="words")], out / "model.onnx",
                          {"words": sample}, atol=1e-4)
    manifest: dict[str, Any] = {
        "name": NAME, "version": f"{NAME}-{dt.datetime.now(dt.UTC):%Y%m%d%H%M%S}", "created": dt.datetime.now(dt.UTC).isoformat(),
        "inputs": report.inputs, "outputs": report.outputs,
        "tagger": {"case": list(CASES), "mark": list(MARKS), "window_words": WINDOW_WORDS},
        "data": {"train_lines": len(fit_lines), "vocabulary": len(vocabulary), "min_count": min_count,
                 "sources": "LJ Speech transcripts, normalised column (public domain), Banking77 train split "
                            "(CC BY 4.0), lines with digits left out",
                 "test": {k: len(v) for k, v in tests.items()}},
        "training": {"best_epoch": best[1], "development_loss": round(best[0], 4), "development_lines": len(dev_lines),
                     "batch": batch, "seed": seed, "seconds": round(time.time() - started, 1)},
        "export": report.as_manifest(),
    }
    write_manifest(out, manifest)
    punctuator = Punctuator.from_folder(out)
    manifest["metrics"] = {**evaluate(punctuator, fit_lines, tests),
                           "example": punctuator.display(EXAMPLE.split()),
                           "measured_on": "the exported ONNX graph through the worker's Punctuator, test lines only"}
    write_manifest(out, manifest)
    log.info("punctuation metrics: %s", manifest["metrics"])
    return manifest
