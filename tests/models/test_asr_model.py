"""The speech model: training checkpoints and resumes, the export streams like the Keras model, and the
committed model's held-out figures are measured again."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from models import ARTIFACTS
from models import asr as asr_model
from models import asr_data

COMMITTED = ARTIFACTS / "asr"
SHARED = asr_data.ASR_DATA


@pytest.mark.slow
@pytest.mark.skipif(not SHARED.exists(), reason="../shared/data/asr not present")
def test_training_stops_at_its_time_budget_and_resumes_where_it_stopped(tmp_path: Path, monkeypatch) -> None:
    from workers.asr.audio import features, load_audio

    clips = asr_data.fsdd_clips()[0][:24]  # real speech, no TTS needed
    examples = [(features(load_audio(c.path)).astype(np.float16), c.text) for c in clips]
    data = tmp_path / "train-tiny.pkl"
    data.write_bytes(pickle.dumps({"jobs": len(examples), "examples": examples * 8}))
    monkeypatch.setattr(asr_data, "build", lambda cache, seed=0, stage="base": data)
    monkeypatch.setattr(asr_model, "evaluate", lambda out: {"ljspeech_held_out": {"wer": 1.0}})
    monkeypatch.setattr(asr_data, "lm_corpus", lambda: ["one two three"] * 3)
    tiny = {"channels": 16, "kernel": 3, "blocks": 1, "hidden": 16, "cache": tmp_path / "cache"}
    stages = (asr_model.Stage("base", "base", 2, 2e-3, 600, per_char=False), asr_model.Stage("adapt", "adapt", 1, 1e-3, 300))
    out = tmp_path / "model"
    assert asr_model.train(out, stages, max_minutes=1e-4, **tiny) is None  # stops after one step
    history = tmp_path / "cache" / "checkpoints"
    (run,) = history.iterdir()
    assert any(p.name.startswith("ckpt") for p in run.iterdir())
    manifest = asr_model.train(out, stages, **tiny)
    assert manifest is not None
    report = manifest["training"]["stages"]
    assert [h["epoch"] for h in report["base"]["history"]] == [0, 1]
    assert [h["epoch"] for h in report["adapt"]["history"]] == [0] and report["adapt"]["loss"] == "CTC per character"
    assert report["adapt"]["batch_frames"] == 300
    assert len(list(history.iterdir())) == 2  # each stage checkpoints on its own
    assert (out / "model.onnx").exists() and (out / "lm.txt.gz").exists()
    assert max(manifest["export"]["parity_max_abs_diff"].values()) < 1e-3
    state = manifest["asr"]["state"]
    assert set(state) == {"cache_in", "cache_0", "state"} and state["state"] == [16]
    assert_keras_weights_match_onnx(out)

    # going on from the trained model: only the stage its manifest lacks is trained, from its weights
    more = stages + (asr_model.Stage("pauses", "pauses", 1, 1e-3, 300),)
    before = asr_model.keras_from_artifacts(out).get_weights()
    continued = asr_model.train(tmp_path / "more", more, start=out, cache=tmp_path / "cache")
    assert continued is not None
    assert list(continued["training"]["stages"]) == ["base", "adapt", "pauses"]
    assert continued["training"]["stages"]["base"] == report["base"]  # carried over, not trained again
    assert continued["training"]["continued_from"] == manifest["version"]
    assert continued["asr"]["state"] == state
    after = asr_model.keras_from_artifacts(tmp_path / "more").get_weights()
    assert any(not np.array_equal(a, b) for a, b in zip(before, after, strict=True))
    assert len(list(history.iterdir())) == 3
    assert_keras_weights_match_onnx(tmp_path / "more")


needs_model = pytest.mark.skipif(not (COMMITTED / "model.onnx").exists() or not SHARED.exists(),
                                 reason="committed ASR model or ../shared/data/asr missing")


@needs_model
def test_committed_model_figures_are_measured_again() -> None:
    manifest = json.loads((COMMITTED / "manifest.json").read_text())
    report = asr_model.evaluate(COMMITTED)
    for name, measured in report.items():
        recorded = manifest["metrics"][name]
        assert measured["clips"] == recorded["clips"]
        assert measured["wer"] == pytest.approx(recorded["wer"], abs=0.01), name
    assert manifest["lm"]["order"] == asr_model.LM_ORDER and (COMMITTED / "lm.txt.gz").exists()


def noise(kind: str, dbfs: float, rate: int, seconds: float = 10.0) -> np.ndarray:
    """Audio with no speech in it: white, pink (1/f) or brown (1/f^2) noise, or mains hum, at ``dbfs`` RMS."""
    rng = np.random.default_rng(7)
    n = int(seconds * rate)
    if kind == "hum":
        t = np.arange(n) / rate
        x = sum(np.sin(2 * np.pi * 50 * k * t) / k for k in range(1, 8))
    else:
        f = np.fft.rfftfreq(n, 1 / rate)
        f[0] = f[1]
        x = np.fft.irfft(np.fft.rfft(rng.standard_normal(n)) / f ** {"white": 0.0, "pink": 0.5, "brown": 1.0}[kind], n)
    return (x / np.sqrt(np.mean(x ** 2)) * 10 ** (dbfs / 20)).astype(np.float32)


@needs_model
@pytest.mark.parametrize("rate", [16_000, 8_000])
def test_quiet_audio_without_speech_yields_no_words(tmp_path: Path, rate: int) -> None:
    """A stream that starts in silence or room noise (every microphone and phone stream does) gets no words:
    the model's first frames once made every such stream begin with a final "i". Loud noise: the next test."""
    from workers.asr.audio import write_wav
    from workers.asr.recognizer import AcousticModel, Recognizer
    from workers.asr.settings import AsrSettings
    from workers.asr.transcribe import transcribe
    from workers.settings import OnnxSettings

    quiet = {"zeros": np.zeros(10 * rate, np.float32), "white-50": noise("white", -50, rate),
             "white-35": noise("white", -35, rate), "pink-35": noise("pink", -35, rate),
             "brown-30": noise("brown", -30, rate), "hum-30": noise("hum", -30, rate)}
    paths = []
    for name, audio in quiet.items():
        paths.append(tmp_path / f"{name}.wav")
        write_wav(paths[-1], audio, rate)
    recognizer = Recognizer.from_settings(AcousticModel(COMMITTED, OnnxSettings()), AsrSettings())
    assert {Path(r["file"]).stem: r["text"] for r in transcribe(paths, recognizer)} == dict.fromkeys(quiet, "")


@needs_model
def test_loud_noise_over_a_phone_line_gets_no_words_and_what_it_would_get_is_unsure(tmp_path: Path) -> None:
    """Loud pink noise over a phone line (-25 dBFS, 8 kHz): the streaming model takes parts of it for speech,
    and the second pass, tuned on digits, writes "Two." for them. The no-speech rule drops those finals; with
    the rule off the words come, each with a confidence a floor drops them by."""
    from workers.asr.audio import write_wav
    from workers.asr.recognizer import AcousticModel, Recognizer
    from workers.asr.settings import AsrSettings
    from workers.asr.transcribe import transcribe
    from workers.settings import OnnxSettings

    write_wav(tmp_path / "pink.wav", noise("pink", -25, 8_000, seconds=30.0), 8_000)
    model = AcousticModel(COMMITTED, OnnxSettings())

    def words(**settings: float) -> list[dict]:
        recognizer = Recognizer.from_settings(model, AsrSettings(**settings))
        (result,) = transcribe([tmp_path / "pink.wav"], recognizer)
        return [w for segment in result["segments"] for w in segment["words"]]

    assert words() == []
    made_up = words(no_speech_threshold=1.0)
    assert len(made_up) >= 3 and max(w["confidence"] for w in made_up) < 0.3  # real digits: mostly 0.9 and more
    assert words(no_speech_threshold=1.0, min_word_confidence=0.1) == [w for w in made_up if w["confidence"] >= 0.1]


@needs_model
def test_saved_keras_weights_rebuild_the_served_model() -> None:
    """The TensorFlow baselines of `workers bench asr` run the model the worker serves."""
    assert_keras_weights_match_onnx(COMMITTED)


def assert_keras_weights_match_onnx(model_dir: Path) -> None:
    from workers.asr.recognizer import AcousticModel
    from workers.settings import OnnxSettings

    keras_model = asr_model.keras_from_artifacts(model_dir)
    served = AcousticModel(model_dir, OnnxSettings())
    rng = np.random.default_rng(3)
    memories = [{n: rng.normal(0, 0.3, s).astype(np.float32) for n, s in served.state_shapes.items()} for _ in range(2)]
    feeds = {n: np.stack([m[n] for m in memories]) for n in served.state_shapes}
    frames = rng.normal(-6, 3, (2, 16, served.state_shapes['cache_in'][1] // 2)).astype(np.float32)
    expected = keras_model({"features": frames, **feeds})["log_probs"].numpy()
    np.testing.assert_allclose(served.run(memories, frames), expected, atol=1e-3)
