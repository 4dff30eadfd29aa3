import json

import pytest

from models import punctuation
from models.asr_data import ASR_DATA
from workers.asr.punctuation import Punctuator

pytestmark = pytest.mark.skipif(not (ASR_DATA / "ljspeech").exists(), reason="../shared/data/asr not present")


def test_the_committed_tagger_measures_what_its_manifest_says_and_beats_both_baselines() -> None:
    """Re-measured through the worker's Punctuator on lines it was never trained on."""
    train, dev, tests = punctuation.lines()
    seen = {tuple(line) for line in train}
    for test in tests.values():  # the same sentence twice in a corpus is the only overlap (LJ 5/1,270, Banking77 19/3,031)
        assert sum(tuple(line) in seen for line in test) < 0.01 * len(test)
    manifest = json.loads((punctuation.OUT / "manifest.json").read_text())
    punctuator = Punctuator.from_folder(punctuation.OUT)
    measured = punctuation.evaluate(punctuator, train, tests)
    for name, report in measured.items():
        for system, scores in report.items():
            if system != "lines":
                for metric, value in scores.items():
                    assert value == pytest.approx(manifest["metrics"][name][system][metric], abs=0.002), (name, system, metric)
    for name in ("ljspeech_every_tenth_line", "banking77_test"):
        model, rule = measured[name]["model"], measured[name]["baseline_truecase_and_full_stop"]
        assert model["case_accuracy"] > rule["case_accuracy"] and model["lines_exact"] > rule["lines_exact"]
        assert model[",_f1"] > 0.25 and model["._f1"] > rule["._f1"]
    assert measured["banking77_test"]["model"]["?_f1"] > 0.85
