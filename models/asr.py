"""Streaming CTC acoustic model: log-mel frames -> character log-probabilities, chunk by chunk.

The graph the worker runs is the one trained: every layer is causal and its memory is an explicit input
and output (``cache_*`` for the convolutions' left context, ``state`` for the GRU), so a stream fed in
chunks of any even number of frames gets exactly the output of the whole utterance (tested), and chunks
of many streams go into one batched ONNX Runtime call.

    features [B, T, 80] (T even) --normalise, stack 2 frames (20 ms)--> conv k3
      -> BLOCKS x (depthwise conv k9 + pointwise, layer norm, ReLU, residual) -> GRU -> logits [B, T/2, 29]

Training (``workers train asr``) checkpoints every few minutes and resumes where it stopped, so a long
CPU run can be split (``--max-minutes``).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import pickle
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models import ARTIFACTS
from workers.asr.audio import N_MELS
from workers.asr.recognizer import AsrManifest
from workers.asr.text import VOCAB_SIZE, encode
from workers.runtime.artifact import write_manifest

log = logging.getLogger(__name__)

NAME = "asr"
STACK = 2
EPOCHS = 30
ADAPT_EPOCHS = 12
REFINE_EPOCHS = 10
NARROWBAND_EPOCHS = 8
PAUSE_EPOCHS = 5
LM_ORDER = 6
CACHE_DIR = Path(".cache") / "asr"


def state_specs(channels: int, kernel: int, blocks: int, hidden: int) -> dict[str, tuple[int, ...]]:
    """Per-stream memory the graph takes and returns: name -> shape without the batch axis."""
    specs = {"cache_in": (2, N_MELS * STACK)}
    specs.update({f"cache_{i}": (kernel - 1, channels) for i in range(blocks)})
    specs["state"] = (hidden,)
    return specs


def build_model(mean: np.ndarray, std: np.ndarray, channels: int = 256, kernel: int = 9, blocks: int = 5,
                hidden: int = 320, dropout: float = 0.1) -> Any:
    """The streaming model: inputs ``features`` and the state of :func:`state_specs`; outputs ``log_probs``
    and ``next_<state name>`` for each."""
    import keras
    from keras import layers, ops

    specs = state_specs(channels, kernel, blocks, hidden)
    features = keras.Input((None, N_MELS), name="features")
    memory = {name: keras.Input(shape, name=name) for name, shape in specs.items()}
    nexts = {}

    def causal(x: Any, name: str, layer: Any) -> Any:
        joined = ops.concatenate([memory[name], x], axis=1)
        nexts[name] = joined[:, -specs[name][0]:, :]
        return layer(joined)

    x = layers.Normalization(mean=mean, variance=std ** 2, name="normalise")(features)
    x = layers.Reshape((-1, N_MELS * STACK), name="stack")(x)
    x = causal(x, "cache_in", layers.Conv1D(channels, 3, activation="relu", name="conv_in"))
    for i in range(blocks):
        y = causal(x, f"cache_{i}", layers.DepthwiseConv1D(kernel, name=f"depthwise_{i}"))
        y = layers.Conv1D(channels, 1, name=f"pointwise_{i}")(y)
        y = layers.LayerNormalization(name=f"norm_{i}")(y)
        y = layers.Dropout(dropout)(layers.ReLU()(y))
        x = layers.Add()([x, y])
    sequence, next_state = layers.GRU(hidden, return_sequences=True, return_state=True, name="gru")(
        x, initial_state=memory["state"])
    nexts["state"] = next_state
    x = layers.Dropout(dropout)(sequence)
    logits = layers.Dense(VOCAB_SIZE, name="logits")(x)
    outputs = {"log_probs": layers.Activation("log_softmax", name="log_probs")(logits)}
    outputs.update({f"next_{name}": layers.Identity(name=f"next_{name}")(value) for name, value in nexts.items()})
    return keras.Model({"features": features, **memory}, outputs, name="asr_streaming")


def zero_state(specs: dict[str, tuple[int, ...]], batch: int) -> dict[str, np.ndarray]:
    return {name: np.zeros((batch, *shape), np.float32) for name, shape in specs.items()}


def _batches(lengths: np.ndarray, max_frames: int, max_batch: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Length-sorted batches (little padding) of at most ``max_frames`` padded frames, in random order."""
    order = np.argsort(lengths + rng.uniform(0, 50, len(lengths)), kind="stable")
    batches, current = [], []
    for index in order:
        if current and (len(current) + 1) * lengths[index] > max_frames or len(current) == max_batch:
            batches.append(np.array(current))
            current = []
        current.append(index)
    if current:
        batches.append(np.array(current))
    return [batches[i] for i in rng.permutation(len(batches))]


def _spec_augment(x: np.ndarray, length: int, mean: np.ndarray, rng: np.random.Generator) -> None:
    """SpecAugment in place: two frequency masks (<= 12 bins) and time masks (<= 5% of frames each)."""
    for _ in range(2):
        width = int(rng.integers(0, 13))
        start = int(rng.integers(0, N_MELS - width + 1))
        x[:length, start:start + width] = mean[start:start + width]
    for _ in range(max(1, length // 300)):
        width = int(rng.integers(0, max(2, length // 20)))
        start = int(rng.integers(0, max(1, length - width)))
        x[start:start + width] = mean


def _pad_batch(examples: list[tuple[np.ndarray, str]], indices: np.ndarray, mean: np.ndarray,
               rng: np.random.Generator | None) -> tuple[np.ndarray, np.ndarray, list[list[int]]]:
    lengths = np.array([len(examples[i][0]) for i in indices])
    frames = int(lengths.max() + lengths.max() % STACK)
    x = np.broadcast_to(mean, (len(indices), frames, N_MELS)).astype(np.float32)
    labels = []
    for row, i in enumerate(indices):
        feats, text = examples[i]
        x[row, : len(feats)] = feats
        if rng is not None:
            _spec_augment(x[row], len(feats), mean, rng)
        labels.append(encode(text))
    return x, lengths // STACK, labels


def _greedy(log_probs: np.ndarray) -> list[int]:
    best = log_probs.argmax(-1)
    tokens, previous = [], 0
    for t in best:
        if t != previous and t != 0:
            tokens.append(int(t))
        previous = t
    return tokens


def _load(data_path: Path) -> list[tuple[np.ndarray, str]]:
    with open(data_path, "rb") as f:
        examples: list[tuple[np.ndarray, str]] = pickle.load(f)["examples"]
    return [(x.astype(np.float32), t) for x, t in examples if len(encode(t)) and len(x) // STACK > len(t)]


def _hours(examples: list[tuple[np.ndarray, str]]) -> float:
    return sum(len(x) for x, _ in examples) / 100 / 3600


def _fit(model: Any, specs: dict[str, tuple[int, ...]], examples: list[tuple[np.ndarray, str]],
         validation: list[tuple[np.ndarray, str]], mean: np.ndarray, run_dir: Path, epochs: int, lr: float,
         seed: int, max_frames: int, deadline: float | None, per_char: bool = False) -> list[dict[str, Any]] | None:
    """One training stage with its own optimizer and checkpoints in ``run_dir``: resumes there when a run
    stopped part-way (or restores the finished stage's weights). Returns the stage's history, or None when
    ``deadline`` came first.

    ``per_char`` divides each utterance's CTC loss by its label length. Without it a batch of 6 s LJ clips
    weighs ~30x a batch of one-word digits, and Adam's step size follows the long ones: the short words
    are barely learnt."""
    import keras
    import tensorflow as tf

    from workers.asr.text import decode, edit_distance

    started = time.time()
    lengths = np.array([len(x) for x, _ in examples])
    steps_per_epoch = len(_batches(lengths, max_frames, 64, np.random.default_rng(0)))
    total = steps_per_epoch * epochs
    schedule = keras.optimizers.schedules.CosineDecay(lr / 10, total, alpha=0.05, warmup_target=lr,
                                                       warmup_steps=min(400, total // 10))
    optimizer = keras.optimizers.Adam(schedule, clipnorm=5.0)
    epoch_var, batch_var = tf.Variable(0, dtype=tf.int64), tf.Variable(0, dtype=tf.int64)
    optimizer.build(model.trainable_variables)  # its variables exist now: a restore fills them at once
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, epoch=epoch_var, batch=batch_var)
    manager = tf.train.CheckpointManager(checkpoint, run_dir, max_to_keep=2)
    if manager.latest_checkpoint:
        checkpoint.restore(manager.latest_checkpoint)
        log.info("resumed from %s: epoch %d, batch %d", manager.latest_checkpoint, int(epoch_var), int(batch_var))

    signature = [tf.TensorSpec([None, None, N_MELS], tf.float32), tf.TensorSpec([None], tf.int32),
                 tf.SparseTensorSpec([None, None], tf.int32), tf.TensorSpec([None], tf.float32)]

    @tf.function(input_signature=signature)
    def step(x: Any, frames: Any, labels: Any, weights: Any) -> Any:
        batch = tf.shape(x)[0]
        feeds = {"features": x, **{n: tf.zeros(tf.concat([[batch], s], 0)) for n, s in specs.items()}}
        with tf.GradientTape() as tape:
            log_probs = model(feeds, training=True)["log_probs"]
            loss = tf.reduce_mean(weights * tf.nn.ctc_loss(labels, log_probs, None, frames, logits_time_major=False,
                                                           blank_index=0))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    def sparse(labels: list[list[int]]) -> Any:
        indices = [(r, c) for r, row in enumerate(labels) for c in range(len(row))]
        values = [v for row in labels for v in row]
        return tf.SparseTensor(np.array(indices, np.int64), np.array(values, np.int32),
                               (len(labels), max(len(r) for r in labels)))

    def validate() -> float:
        errors = chars = 0
        for start in range(0, len(validation), 32):
            idx = np.arange(start, min(start + 32, len(validation)))
            x, frames, labels = _pad_batch(validation, idx, mean, None)
            out = model({"features": x, **zero_state(specs, len(idx))}, training=False)["log_probs"].numpy()
            for row, label in enumerate(labels):
                hyp = _greedy(out[row, : frames[row]])
                errors += edit_distance(decode(label), decode(hyp))
                chars += len(label)
        return errors / max(chars, 1)

    last_save = time.time()
    history_file = run_dir / "history.json"
    history = json.loads(history_file.read_text()) if history_file.exists() and manager.latest_checkpoint else []
    while int(epoch_var) < epochs:
        epoch = int(epoch_var)
        batches = _batches(lengths, max_frames, 64, np.random.default_rng(seed * 1000 + epoch))
        augment_rng = np.random.default_rng(seed * 7919 + epoch)
        losses = []
        for b in range(len(batches)):
            indices = batches[b]
            x, frames, labels = _pad_batch(examples, indices, mean, augment_rng)
            if b < int(batch_var):
                continue  # resuming mid-epoch: same batches, same augmentation draws, skip the done ones
            weights = np.array([1 / len(label) if per_char else 1.0 for label in labels], np.float32)
            losses.append(float(step(x, frames.astype(np.int32), sparse(labels), weights)))
            batch_var.assign(b + 1)
            if time.time() - last_save > 300:
                manager.save()
                last_save = time.time()
            if deadline and time.time() > deadline:
                manager.save()
                log.info("%s: stopped at epoch %d batch %d; run again to resume", run_dir.name, epoch, b + 1)
                return None
        cer = validate()
        history.append({"epoch": epoch, "loss": round(float(np.mean(losses)) if losses else float("nan"), 3),
                        "validation_cer": round(cer, 4)})
        log.info("%s epoch %d: loss %.3f, validation CER %.3f (%.0f s)", run_dir.name, epoch, history[-1]["loss"],
                 cer, time.time() - started)
        epoch_var.assign(epoch + 1)
        batch_var.assign(0)
        manager.save()
        history_file.write_text(json.dumps(history))
        last_save = time.time()
    return history


@dataclass(frozen=True)
class Stage:
    """One training stage: which rendered set (``asr_data.STAGE_JOBS``), how long, how fast, how big a batch."""

    name: str
    data: str
    epochs: int
    lr: float
    max_frames: int = 16_000  # padded frames per batch (16,000 = 160 s of audio)
    per_char: bool = True  # CTC loss per label character (see _fit)


STAGES = (
    Stage("base", "base", EPOCHS, 2e-3, per_char=False),
    Stage("adapt", "adapt", ADAPT_EPOCHS, 5e-4),
    Stage("refine", "adapt", REFINE_EPOCHS, 3e-4, max_frames=4_000),
    Stage("narrowband", "narrowband", NARROWBAND_EPOCHS, 3e-4, max_frames=4_000),
    Stage("pauses", "pauses", PAUSE_EPOCHS, 2e-4, max_frames=4_000),
)
"""The recipe of the committed model. *base*: real clips and a broad TTS set, from scratch. *adapt*: real
speech padded with silence and digit strings (``asr_data.adaptation_jobs``). *refine*: the same data in
batches a quarter the size, four times the updates per epoch (the first two stages made only ~110 updates
per epoch, and the model was still far from fitting its training set). *narrowband*: the adaptation mix
drawn afresh (twice the TTS voices) with half of it through a telephone channel (8 kHz,
``asr_data.narrowband_jobs``). *pauses*: that mix drawn again, half of it after 0.8-4 s of silence
(``asr_data.pause_jobs``), so speech heard seconds into a stream is read as well as speech at its start.
Stages tried and not shipped: docs/notes/asr-log.md."""


STAGE_NAMES = tuple(s.name for s in STAGES)


def _stage_dir(previous: str, stage: Stage, data: Path, seed: int, sizes: str) -> str:
    if not previous:  # the first stage's name predates the others; kept so its checkpoints still resume
        return f"{data.stem}-{sizes}-e{stage.epochs}-s{seed}"
    return (f"{previous}--{stage.name}-{data.stem}-e{stage.epochs}" + ("-perchar" if stage.per_char else "")
            + (f"-f{stage.max_frames}" if stage.max_frames != 16_000 else ""))


def train(out: Path = ARTIFACTS / NAME, stages: tuple[Stage, ...] = STAGES, cache: Path = CACHE_DIR,
          max_minutes: float | None = None, seed: int = 0, channels: int = 256, kernel: int = 9, blocks: int = 5,
          hidden: int = 320, start: Path | None = None) -> dict[str, Any] | None:
    """Train through ``stages`` (each resuming from ``cache/checkpoints`` when a run with these settings stopped
    part-way, a stage starting from the weights the previous one ended with), export to ONNX with a parity
    check and measure WER on the held-out sets. Returns the manifest, or None when ``max_minutes`` ran out
    first (run the same command again to go on). Normalisation and validation come from the base stage's set.

    ``start``: a trained artifact directory to go on from: its weights, normalisation and sizes, and only the
    stages its manifest does not list (a new stage is trained on the committed model without the hours of
    the stages before it)."""
    import keras

    from models import asr_data

    started = time.time()
    deadline = started + max_minutes * 60 if max_minutes else None
    keras.utils.set_random_seed(seed)
    base_path = asr_data.build(cache, seed, stage="base")
    examples = _load(base_path)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(examples))
    validation = [examples[i] for i in order[:150]]
    base_training = [examples[i] for i in order[150:]]
    if start is None:
        sample = np.concatenate([examples[i][0] for i in order[150:][:: max(1, len(examples) // 500)]])
        mean, std = sample.mean(0).astype(np.float32), (sample.std(0) + 1e-3).astype(np.float32)
        model = build_model(mean, std, channels, kernel, blocks, hidden)
        run_dir, report = "", {}
    else:
        previous = AsrManifest.load(start)
        training = previous.section("training")
        channels, kernel, blocks, hidden = (training[k] for k in ("channels", "kernel", "blocks", "hidden"))
        model, mean, std = keras_from_artifacts(start, with_normalisation=True)
        report = dict(training["stages"])
        stages = tuple(s for s in stages if s.name not in report)
        run_dir = continued = previous.version
    specs = state_specs(channels, kernel, blocks, hidden)
    sizes = f"c{channels}k{kernel}b{blocks}h{hidden}"
    for stage in stages:
        path = asr_data.build(cache, seed, stage=stage.data)
        examples = base_training if path == base_path else _load(path)
        log.info("stage %s: %d utterances (%.2f h of audio incl. augmented copies)", stage.name, len(examples),
                 _hours(examples))
        run_dir = _stage_dir(run_dir, stage, path, seed, sizes)
        history = _fit(model, specs, examples, validation, mean, cache / "checkpoints" / run_dir, stage.epochs,
                       stage.lr, seed + STAGE_NAMES.index(stage.name), stage.max_frames, deadline, stage.per_char)
        if history is None:
            return None
        report[stage.name] = {"epochs": stage.epochs, "lr": stage.lr, "batch_frames": stage.max_frames,
                              "data": path.name, "loss": "CTC per character" if stage.per_char else "CTC per utterance",
                              "training_hours": round(_hours(examples), 2), "utterances": len(examples),
                              "history": history}
        del examples
    manifest = export(model, specs, out, validation[:8], mean, {
        "data": {"sources": SOURCES, "validation": "150 utterances drawn from the base set, never trained on"},
        "training": {"seconds_this_run": round(time.time() - started, 1), "seed": seed, "channels": channels,
                     "kernel": kernel, "blocks": blocks, "hidden": hidden, "stages": report,
                     **({"continued_from": continued} if start is not None else {})},
    })
    save_keras_weights(model, mean, std, out)
    return finish(out, manifest)


def finish(out: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """Train the language models beside the exported acoustic model, measure the held-out figures through
    the worker's path and write the manifest. ``workers train asr --language-models`` runs only this on
    the committed model (the acoustic model is unchanged, so its checkpoints and rendered sets are not needed)."""
    from models import asr_data
    from workers.asr.lm import CharLM, WordLM

    corpus = asr_data.lm_corpus()
    chars, words = CharLM.train(corpus, order=LM_ORDER), WordLM.train(corpus)
    chars.save(out / "lm.txt.gz")
    words.save(out / "words.txt.gz")
    manifest["lm"] = {"file": "lm.txt.gz", "kind": "character n-gram, Witten-Bell", "order": LM_ORDER,
                      "contexts": len(chars), "words": {"file": "words.txt.gz", "kind": "word bigram, Witten-Bell",
                                                        "vocabulary": len(words)},
                      "text": "LJ Speech transcripts except the held-out clips' (public domain), Banking77 and "
                              "CLINC150 training utterances, the digit words, "
                              f"{asr_data.LM_DIGIT_STRINGS:,} digit strings of 1-10 digits"}
    manifest["metrics"] = {**evaluate(out), "measured_on": "the exported ONNX graph through the streaming path "
                           "(160 ms chunks, endpointing, finals by beam search with the character and word LMs at "
                           "the default settings), held-out clips only"}
    write_manifest(out, manifest, AsrManifest)
    return manifest


SOURCES = {
    "ljspeech": "LJ Speech 1.1 clips (public domain), every sixth clip held out",
    "fsdd": "Free Spoken Digit Dataset (CC BY-SA 4.0), speaker 'jackson' held out",
    "tts": "espeak-ng and flite voices over LJ Speech transcripts (held-out clips excluded), Banking77 (CC BY 4.0) and CLINC150 (CC BY 3.0) utterances, digit strings",
    "augmentation": "speed 0.85-1.15, gain, white noise 10-40 dB SNR, SpecAugment; adapt stage: 0-0.8 s of "
                    "silence (digital zero or a -75..-40 dBFS floor) before and after, FSDD digit strings; "
                    "narrowband stage: half the non-FSDD utterances through an 8 kHz telephone channel; pauses "
                    "stage: that mix again, half of it after 0.8-4 s of silence",
}


def export(model: Any, specs: dict[str, tuple[int, ...]], out: Path, samples: list[tuple[np.ndarray, str]],
           mean: np.ndarray, extra: dict[str, Any]) -> dict[str, Any]:
    import tensorflow as tf

    from export.keras_to_onnx import export_keras
    from workers.asr import audio
    from workers.asr.text import ALPHABET

    rng = np.random.default_rng(1)
    frames = 32
    x = np.stack([np.resize(s[0], (frames, N_MELS)) for s in samples]).astype(np.float32)
    feeds = {"features": x, **{n: rng.normal(0, 0.5, (len(samples), *s)).astype(np.float32) for n, s in specs.items()}}
    import keras

    shapes = {"features": (None, N_MELS), **specs}
    # tf2onnx feeds the signature positionally: export a list-input wrapper of the dict-input model
    inputs = [keras.Input(shape, name=name) for name, shape in shapes.items()]
    outputs = model({t.name: t for t in inputs})
    named = {name: keras.layers.Identity(name=name)(value) for name, value in outputs.items()}
    model = keras.Model(inputs, named, name="asr_streaming_export")
    signature = [tf.TensorSpec([None, *shape], tf.float32, name=name) for name, shape in shapes.items()]
    out.mkdir(parents=True, exist_ok=True)
    report = export_keras(model, signature, out / "model.onnx", feeds, atol=1e-3)
    version = f"{NAME}-{dt.datetime.now(dt.UTC):%Y%m%d%H%M%S}"
    manifest: dict[str, Any] = {
        "name": NAME, "version": version, "created": dt.datetime.now(dt.UTC).isoformat(),
        "inputs": report.inputs, "outputs": report.outputs,
        "asr": {"sample_rate": audio.SAMPLE_RATE, "window": audio.WINDOW, "hop": audio.HOP, "n_fft": audio.N_FFT,
                "n_mels": N_MELS, "stack": STACK, "alphabet": ALPHABET, "blank": 0,
                "state": {n: list(s) for n, s in specs.items()}},
        **extra,
        "export": report.as_manifest(),
        "metrics": {},
    }
    write_manifest(out, manifest, AsrManifest)
    return manifest


KERAS_WEIGHTS = "keras_weights.npz"
"""The trained Keras weights beside the ONNX export, so ``workers bench asr``'s TensorFlow baselines run the
very model the worker serves (checked against the ONNX graph in the tests)."""


def save_keras_weights(model: Any, mean: np.ndarray, std: np.ndarray, out: Path) -> None:
    weights = {f"w{i:03d}": w for i, w in enumerate(model.get_weights())}
    np.savez_compressed(out / KERAS_WEIGHTS, mean=mean, std=std, **weights)


def keras_from_artifacts(model_dir: Path = ARTIFACTS / NAME, with_normalisation: bool = False) -> Any:
    """The streaming Keras model of a trained artifact directory (its manifest's sizes, its saved weights);
    ``with_normalisation``: (model, mean, std), the features' normalisation it was built with."""
    sizes = AsrManifest.load(model_dir).section("training")
    with np.load(model_dir / KERAS_WEIGHTS) as saved:
        mean, std = saved["mean"], saved["std"]
        model = build_model(mean, std, sizes["channels"], sizes["kernel"], sizes["blocks"], sizes["hidden"])
        model.set_weights([saved[name] for name in sorted(saved.files) if name.startswith("w")])
    return (model, mean, std) if with_normalisation else model


def evaluate(model_dir: Path = ARTIFACTS / NAME, sets: list[str] | None = None) -> dict[str, Any]:
    """WER (and digit accuracy on FSDD) of the streaming model with its own finals (the CTC beam search
    with its language models, no second pass, no level control: the model as trained) on the held-out real speech, through the worker's
    streaming path (``workers transcribe``: 160 ms chunks, endpointing, the set's phrase list if any): what
    training records in the manifest. ``workers evaluate asr`` (:mod:`models.asr_eval`) compares it with
    the two-pass finals and an offline anchor."""
    from models import asr_data
    from workers.asr.lm import Phrases
    from workers.asr.recognizer import AcousticModel, Recognizer
    from workers.asr.settings import AsrSettings
    from workers.asr.text import word_errors
    from workers.asr.transcribe import transcribe
    from workers.settings import OnnxSettings

    chosen_sets = asr_data.evaluation_sets(sets or list(asr_data.ACOUSTIC_SETS))
    as_trained = AsrSettings(second_pass=False, level_control=False, partial_beam=0)  # finals only: no partial search
    recognizer = Recognizer.from_settings(AcousticModel(model_dir, OnnxSettings()), as_trained)
    report: dict[str, Any] = {}
    for name, chosen in chosen_sets.items():
        clips = chosen.clips
        errors = words = exact = 0
        audio_s = 0.0
        examples = []
        phrases = Phrases.parse(chosen.phrases) if chosen.phrases else None
        found = transcribe([c.path for c in clips], recognizer, phrases=phrases)
        for clip, result in zip(clips, found, strict=True):
            e, n = word_errors(clip.text, result["text"])
            errors, words, exact = errors + e, words + n, exact + (result["text"] == clip.text)
            audio_s += result["audio_s"]
            if len(examples) < 3:
                examples.append({"reference": clip.text, "hypothesis": result["text"]})
        report[name] = {"clips": len(clips), "audio_s": round(audio_s, 1), "wer": round(errors / max(words, 1), 4),
                        "exact_match": round(exact / max(len(clips), 1), 4), "examples": examples}
        if chosen.phrases:
            report[name]["phrases"] = chosen.phrases
        log.info("%s: WER %.3f, exact %.3f over %d clips", name, report[name]["wer"], report[name]["exact_match"], len(clips))
    return report
