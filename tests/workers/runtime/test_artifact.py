"""One manifest type: every committed manifest loads as its workload's typed manifest and writes back unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from models import ARTIFACTS
from workers.asr.recognizer import AsrManifest
from workers.bot.model import BotManifest
from workers.clicks.model import SessionManifest
from workers.runtime.artifact import Manifest, write_manifest

TYPED = {"asr": AsrManifest, "bot": BotManifest, "clicks": SessionManifest, "digits": Manifest,
         "asr/punctuation": Manifest}


@pytest.mark.parametrize("name", sorted(TYPED))
def test_committed_manifests_round_trip_through_their_type(name: str, tmp_path: Path) -> None:
    original = json.loads((ARTIFACTS / name / "manifest.json").read_text())
    manifest = TYPED[name].load(ARTIFACTS / name)
    assert manifest.version == original["version"]
    assert json.loads(json.dumps(manifest.write(tmp_path))) == original
    assert json.loads((tmp_path / "manifest.json").read_text()) == original


def test_a_manifest_without_its_workloads_section_is_refused(tmp_path: Path) -> None:
    bare = {"name": "m", "version": "1", "inputs": [], "outputs": []}
    write_manifest(tmp_path, bare)
    with pytest.raises(ValueError, match="policy"):
        BotManifest.load(tmp_path)
    with pytest.raises(FileNotFoundError, match="manifest.json"):
        Manifest.load(tmp_path / "missing")
