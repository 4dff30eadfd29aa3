"""Fine-tuning the ported Whisper tiny.en's decoder in TensorFlow on what the speech worker hears and
Whisper reads badly: a single short word, digits above all, on a phone line's 8 kHz. Offline Whisper
tiny.en gets an unseen speaker's isolated digits right only ~70% of the time ("Bye." for five, "Kevin."
for seven); it was trained on 30 s windows of running speech.

What is trained: the decoder's four blocks and its final norm. The encoder, the cross-attention
projections of its output and the tied token embedding stay as ported, so each clip is encoded once, up
front, and only its encoder output [frames/2, 384] (float16) is kept in memory.

The data (:func:`tuning_clips`), all real speech:

- the Free Spoken Digit Dataset's training speakers, except :data:`DEV_SPEAKER`, who decides when to stop,
  and ``jackson``, who is never seen (he is the evaluation's unseen speaker);
- the Asterisk core prompts (one US speaker, 8 kHz: digits, letters, IVR phrases), from the Debian package;
- the LJ Speech training clips (not the held-out sixth), with their written text, so that running speech
  keeps reading as before.

Each digit and prompt clip is put at a random input level from -55 to -6 dBFS and stored as 16-bit PCM, as
a microphone would deliver it; the serving path then levels it (``workers.asr.whisper.level``). Targets are
written as Whisper writes them: a leading space, a capital, a closing full stop (" Five.").
"""

from __future__ import annotations

import gzip
import json
import logging
import subprocess
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from models.asr_data import ASR_DATA, FSDD_HELD_OUT_SPEAKER
from models.whisper import LAYERS, WIDTH

log = logging.getLogger(__name__)

DEV_SPEAKER = "nicolas"
"""The FSDD speaker whose digits choose the epoch: neither trained on nor reported."""
ASTERISK_PACKAGES = ("asterisk-core-sounds-en-wav", "asterisk-core-sounds-en")
ASTERISK_VOICE = "en_US_f_Allison"
CACHE = Path(__file__).resolve().parents[1] / ".cache" / "asr" / "whisper-tune"
LEVELS_DBFS = (-55.0, -6.0)


@dataclass(frozen=True)
class TuningClip:
    path: str
    text: str
    """As Whisper writes it: " Five.", " Please enter your account number."""
    group: str
    perturbed: bool = False
    """A copy at a random speed (0.9-1.1: pitch and tempo, as another speaker's voice)."""


def written(text: str) -> str:
    """``text`` as Whisper writes a sentence: a leading space, a capital first letter, a closing stop (in
    place of the comma or semicolon where an LJ Speech clip ends mid-sentence: Whisper closes a segment)."""
    text = " ".join(text.split()).rstrip(",;:- ")
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return " " + (text if text[-1] in ".?!" else text + ".")


def asterisk_dir(cache: Path = CACHE) -> Path:
    """The Asterisk prompts' folder: the installed Debian package's, or one unpacked once into ``cache``
    (``apt-get download`` needs no root; CC BY-SA 3.0)."""
    installed = Path("/usr/share/asterisk/sounds") / ASTERISK_VOICE
    if installed.is_dir() and (Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")).is_file():
        return Path("/usr/share")
    root = cache / "asterisk"
    if not (root / "usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz").is_file():
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(["apt-get", "download", *ASTERISK_PACKAGES], cwd=tmp, check=True, capture_output=True)
            for deb in Path(tmp).glob("*.deb"):
                subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    return root / "usr/share"


def asterisk_clips(share: Path) -> list[TuningClip]:
    """Every spoken prompt with its transcript (bracketed non-speech such as ``[beep]`` left out)."""
    listing = share / "doc/asterisk-core-sounds-en/core-sounds-en.txt.gz"
    clips = []
    with gzip.open(listing, "rt", encoding="utf-8") as f:
        lines = f.read().splitlines()
    for line in lines:
        name, sep, text = line.partition(":")
        text = text.strip()
        wav = share / "asterisk/sounds" / ASTERISK_VOICE / f"{name.strip()}.wav"
        if line.startswith(";") or not sep or not text or text.startswith("[") or not wav.is_file():
            continue
        clips.append(TuningClip(str(wav), written(text.split("[")[0].strip()), "asterisk"))
    return clips


def lj_written() -> tuple[list[TuningClip], list[TuningClip]]:
    """(train, development) LJ Speech clips with their written text (the metadata's second column); the
    held-out sixth (``models.asr_data.lj_clips``) is not among them. Every tenth training clip is the
    development share."""
    from models.asr_data import lj_clips

    texts = {}
    for line in (ASR_DATA / "ljspeech" / "metadata.csv").read_text(encoding="utf-8").splitlines():
        clip_id, raw, _ = line.split("|")
        texts[clip_id] = raw
    train = [TuningClip(c.path, written(texts[Path(c.path).stem]), "ljspeech") for c in lj_clips()[0]]
    return [c for i, c in enumerate(train) if i % 10], train[::10]


def fsdd_written() -> tuple[list[TuningClip], list[TuningClip]]:
    """(train, development) FSDD digits: the development speaker's, and the other training speakers'."""
    from models.asr_data import fsdd_clips

    train, dev = [], []
    for clip in fsdd_clips()[0]:
        speaker = clip.group.removeprefix("fsdd-")
        assert speaker != FSDD_HELD_OUT_SPEAKER
        (dev if speaker == DEV_SPEAKER else train).append(TuningClip(clip.path, written(clip.text), clip.group))
    return train, dev


def tuning_clips(asterisk: Path | None, copies: int = 1) -> tuple[list[TuningClip], dict[str, list[TuningClip]]]:
    """(training clips, development sets by name). ``copies``: each digit and prompt clip this many times,
    every copy after the first at a random speed (each copy at its own random level)."""
    fsdd_train, fsdd_dev = fsdd_written()
    lj_train, lj_dev = lj_written()
    prompts = asterisk_clips(asterisk) if asterisk else []
    extra = [replace(c, perturbed=True) for _ in range(copies - 1) for c in fsdd_train + prompts]
    return fsdd_train + lj_train + prompts + extra, {"fsdd_dev": fsdd_dev, "ljspeech_dev": lj_dev}


def _audio(clip: TuningClip, rng: np.random.Generator) -> np.ndarray:
    """16 kHz float audio; digits and prompts at a random level, through 16-bit PCM."""
    from workers.asr.audio import SAMPLE_RATE, read_wav, resample

    audio, rate = read_wav(clip.path)
    speed = rng.uniform(0.9, 1.1) if clip.perturbed else 1.0
    audio = resample(audio, round(rate * speed), SAMPLE_RATE)  # the rate relabelled: pitch and tempo
    if clip.group != "ljspeech":
        rms = float(np.sqrt(np.mean(audio.astype(np.float64) ** 2))) or 1.0
        gain = 10 ** (rng.uniform(*LEVELS_DBFS) / 20) / rms
        audio = np.round(np.clip(audio * gain, -1, 1) * 32767) / 32767
    return audio.astype(np.float32)


def encode(encoder: Any, clips: list[TuningClip], seed: int) -> list[np.ndarray]:
    """Each clip's encoder output [frames/2, 384] float16, through the serving path's features
    (``workers.asr.whisper.encoder_input``: levelled, padded to its window)."""
    from workers.asr.whisper import encoder_input

    layer = encoder.get_layer("encoder")
    rng = np.random.default_rng(seed)
    out = []
    started = time.perf_counter()
    for i, clip in enumerate(clips):
        mel, _ = encoder_input([_audio(clip, rng)])
        out.append(np.asarray(layer.states(mel)[0], np.float16))
        if i % 200 == 199:
            log.info("encoded %d/%d clips in %.0f s", i + 1, len(clips), time.perf_counter() - started)
    return out


class DecoderTrainer:
    """Teacher-forced cross-entropy on the decoder's blocks, the rest frozen."""

    def __init__(self, encoder: Any, decoder: Any, prompt: list[int], eot: int, lr: float) -> None:
        import keras
        import tensorflow as tf

        self.tf = tf
        self.enc = encoder.get_layer("encoder")
        self.dec = decoder.get_layer("decoder")
        self.prompt, self.eot = prompt, eot
        self.variables = self.dec.trainable_variables
        self.optimizer = keras.optimizers.Adam(lr)
        self.optimizer.build(self.variables)
        self._step = tf.function(self._train_step, reduce_retracing=True)
        self._loss = tf.function(self._losses, reduce_retracing=True)

    def batch(self, states: list[np.ndarray], tokens: list[list[int]]) -> tuple[np.ndarray, ...]:
        """Padded inputs: encoder outputs [B, T, 384] (one window length per batch), decoder inputs,
        targets and their weights [B, L]."""
        frames = {len(s) for s in states}
        assert len(frames) == 1, "a batch shares one window length"
        rows = [self.prompt + t for t in tokens]
        longest = max(len(r) for r in rows)
        inputs = np.full((len(rows), longest), self.eot, np.int32)
        targets = np.full((len(rows), longest), self.eot, np.int32)
        weights = np.zeros((len(rows), longest), np.float32)
        for i, (row, text) in enumerate(zip(rows, tokens, strict=True)):
            inputs[i, :len(row)] = row
            targets[i, len(self.prompt) - 1:len(row)] = text + [self.eot]
            weights[i, len(self.prompt) - 1:len(row)] = 1.0
        return np.stack(states).astype(np.float32), inputs, targets, weights

    def _losses(self, states: Any, inputs: Any, targets: Any, weights: Any) -> Any:
        tf = self.tf
        cross_k, cross_v = self.enc.project(states)
        count = tf.shape(inputs)[0]
        empty = tf.zeros([count, LAYERS, 0, WIDTH])
        hidden, _, _ = self.dec.hidden(inputs, tf.zeros([count, 1], tf.int32), empty, empty, cross_k, cross_v)
        logits = tf.matmul(hidden, self.dec.projection)
        losses = tf.nn.sparse_softmax_cross_entropy_with_logits(targets, logits)
        return tf.reduce_sum(losses * weights, axis=1), tf.reduce_sum(weights, axis=1)

    def _train_step(self, states: Any, inputs: Any, targets: Any, weights: Any) -> Any:
        tf = self.tf
        with tf.GradientTape() as tape:
            total, count = self._losses(states, inputs, targets, weights)
            loss = tf.reduce_sum(total) / tf.reduce_sum(count)
        grads = tape.gradient(loss, self.variables)
        grads, _ = tf.clip_by_global_norm(grads, 1.0)
        self.optimizer.apply_gradients(zip(grads, self.variables))
        return loss

    def step(self, *batch: np.ndarray) -> float:
        return float(self._step(*batch))

    def loss(self, *batch: np.ndarray) -> float:
        total, count = self._loss(*batch)
        return float(np.sum(total) / np.sum(count))


def batches(lengths: list[int], size: int, rng: np.random.Generator) -> list[list[int]]:
    """Clip indices in batches of one window length each, shuffled."""
    by_length: dict[int, list[int]] = {}
    for i, n in enumerate(lengths):
        by_length.setdefault(n, []).append(i)
    out = []
    for members in by_length.values():
        members = list(rng.permutation(members))
        out += [members[i:i + size] for i in range(0, len(members), size)]
    return [out[i] for i in rng.permutation(len(out))]


def tune(out: Path, epochs: int = 4, lr: float = 1e-5, batch_size: int = 16, seed: int = 0,
         asterisk: bool = True, copies: int = 1, cache: Path = CACHE, quantize: bool = True) -> dict[str, Any]:
    """Fine-tune, keep the epoch with the lowest development loss, export it to ``out`` (the exported pair
    as ``models.whisper.export`` writes it). The decoder's weights are checkpointed per epoch in ``cache``;
    a run with the same settings resumes after the last finished epoch, and one whose epochs are all done only
    exports the chosen epoch (the clips are not encoded again: ``encode_seconds`` is then None)."""
    import tensorflow as tf

    from models.whisper import build, export, read_ct2, weights_dir
    from workers.asr.whisper import Tokenizer

    tf.random.set_seed(seed)
    source = weights_dir()
    encoder, decoder = build(read_ct2(source / "model.bin"))
    tokenizer = Tokenizer(source.joinpath("vocabulary.txt").read_text(encoding="utf-8").splitlines(),
                          _merges(source))
    train, dev = tuning_clips(asterisk_dir(cache) if asterisk else None, copies)
    log.info("tuning on %d clips (%s); development sets %s", len(train),
             {g: sum(c.group.startswith(g) for c in train) for g in ("fsdd", "asterisk", "ljspeech")},
             {k: len(v) for k, v in dev.items()})
    run = cache / f"run-lr{lr:g}-b{batch_size}-s{seed}-a{int(asterisk)}-c{copies}"
    run.mkdir(parents=True, exist_ok=True)
    history_path = run / "history.json"
    previous = json.loads(history_path.read_text()) if history_path.exists() else None
    encode_s = None
    if previous and len(previous) > epochs:  # every epoch done: export the chosen one, no need to encode the clips
        history = previous
        log.info("all %d epochs done in %s: exporting", epochs, run)
    else:
        started = time.perf_counter()
        states = encode(encoder, train, seed)
        dev_states = {k: encode(encoder, v, seed + 1) for k, v in dev.items()}
        encode_s = time.perf_counter() - started
        tokens = [tokenizer.encode(c.text) for c in train]
        dev_tokens = {k: [tokenizer.encode(c.text) for c in v] for k, v in dev.items()}
        trainer = DecoderTrainer(encoder, decoder, tokenizer.prompt, tokenizer.eot, lr)

        def dev_loss() -> dict[str, float]:
            found = {}
            for name, sts in dev_states.items():
                total = count = 0.0
                for group in batches([len(s) for s in sts], 32, np.random.default_rng(0)):
                    batch = trainer.batch([sts[i] for i in group], [dev_tokens[name][i] for i in group])
                    t, c = trainer._loss(*batch)
                    total, count = total + float(np.sum(t)), count + float(np.sum(c))
                found[name] = round(total / count, 4)
            return found

        history = previous or [{"epoch": 0, **dev_loss()}]
        done = len(history) - 1
        if done:
            decoder.load_weights(run / f"epoch-{done}.weights.h5")
            log.info("resumed after epoch %d", done)
        rng = np.random.default_rng(seed)
        for _ in range(done):
            batches([len(s) for s in states], batch_size, rng)  # the same shuffles as an unbroken run
        for epoch in range(done + 1, epochs + 1):
            began = time.perf_counter()
            losses = []
            for group in batches([len(s) for s in states], batch_size, rng):
                losses.append(trainer.step(*trainer.batch([states[i] for i in group], [tokens[i] for i in group])))
            decoder.save_weights(run / f"epoch-{epoch}.weights.h5")
            history.append({"epoch": epoch, "train_loss": round(float(np.mean(losses)), 4), **dev_loss(),
                            "seconds": round(time.perf_counter() - began, 1)})
            history_path.write_text(json.dumps(history, indent=1))
            log.info("epoch %s", history[-1])
    best = min(history, key=lambda h: h["fsdd_dev"] + h["ljspeech_dev"])
    if best["epoch"]:
        decoder.load_weights(run / f"epoch-{best['epoch']}.weights.h5")
    else:
        encoder, decoder = build(read_ct2(source / "model.bin"))
    report = {"trained": "decoder blocks and final norm (encoder, cross projections, embedding frozen)",
              "clips": {g: sum(c.group.startswith(g) for c in train) for g in ("fsdd", "asterisk", "ljspeech")},
              "fsdd_speakers": sorted({c.group for c in train if c.group.startswith("fsdd")}),
              "development": {"fsdd": f"speaker {DEV_SPEAKER}", "ljspeech": "every tenth LJ training clip"},
              "never_seen": f"FSDD speaker {FSDD_HELD_OUT_SPEAKER}; LJ Speech's held-out sixth",
              "copies": copies, "lr": lr, "batch": batch_size, "epochs": epochs, "seed": seed, "chosen_epoch": best["epoch"],
              "history": history, "encode_seconds": None if encode_s is None else round(encode_s, 1),
              "asterisk": "Debian asterisk-core-sounds-en(-wav) 1.6.1, CC BY-SA 3.0" if asterisk else None}
    from models.asr_data import pocketsphinx_clips
    from workers.asr.audio import SAMPLE_RATE, read_wav, resample

    check = [resample(a, rate, SAMPLE_RATE) for a, rate in (read_wav(c.path) for c in pocketsphinx_clips())]
    return export(out, check, quantize=quantize, built=(encoder, decoder), tuning=report)


def _merges(source: Path) -> list[str]:
    return json.loads((source / "tokenizer.json").read_text(encoding="utf-8"))["model"]["merges"]

