"""A sharded checkpoint's index may only name shards inside the checkpoint's folder."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from affectgpt.encoders._checkpoint import read_tensors, read_weight_map, weight_files
from affectgpt.encoders.whisper import _checkpoint_tensors
from affectgpt.paths import UnsafeNameError

INDEX = "model.safetensors.index.json"


def _checkpoint(root, weight_map):
    """``root/model`` with two real shards and an index holding ``weight_map``; a third
    safetensors file is planted next to the folder (what ``../`` reaches)."""
    folder = root / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    save_file({"a.weight": torch.ones(2)}, str(folder / "model-00001-of-00002.safetensors"))
    save_file({"b.weight": torch.zeros(3)}, str(folder / "model-00002-of-00002.safetensors"))
    save_file({"b.weight": torch.full((3,), 7.0)}, str(root / "planted.safetensors"))
    text = json.dumps({"metadata": {"total_size": 20}, "weight_map": weight_map}, indent=2)
    (folder / INDEX).write_text(text, encoding="utf-8")
    return folder


GOOD = {"a.weight": "model-00001-of-00002.safetensors",
        "b.weight": "model-00002-of-00002.safetensors"}


def test_index_shards_are_read(tmp_path):
    folder = _checkpoint(tmp_path, GOOD)
    assert [p.name for p in weight_files(folder)] == sorted(GOOD.values())
    tensors = read_tensors(folder, lambda key: key == "b.weight")
    assert torch.equal(tensors["b.weight"], torch.zeros(3))


@pytest.mark.parametrize("shard", ["../planted.safetensors", "/etc/passwd",
                                   "sub/../../planted.safetensors", "shard\x00.safetensors"])
@pytest.mark.parametrize("reader", [weight_files, lambda f: read_tensors(f, lambda k: True),
                                    _checkpoint_tensors])
def test_shard_names_that_leave_the_folder_are_refused(tmp_path, shard, reader):
    folder = _checkpoint(tmp_path, {**GOOD, "b.weight": shard})
    with pytest.raises(UnsafeNameError) as info:
        reader(folder)
    error = info.value
    assert error.path == str(folder / INDEX) and error.name == shard
    assert error.line == 7  # the line of the index naming it
    assert f"{folder / INDEX}, line 7: shard file name" in str(error)


def test_malformed_index_is_a_checkpoint_error(tmp_path):
    from affectgpt.encoders._checkpoint import CheckpointError

    folder = _checkpoint(tmp_path, GOOD)
    for text in ("{", '{"weight_map": ["a"]}', '{"weight_map": {"a": 1}}', "[]"):
        (folder / INDEX).write_text(text)
        with pytest.raises(CheckpointError, match=INDEX):
            read_weight_map(folder / INDEX)
