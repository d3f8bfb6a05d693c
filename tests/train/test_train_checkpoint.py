"""Checkpoint folders: contents, atomicity, pointers, pruning, init_from."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file
from train_toys import ToyDataset, collate, fast_config, make_model, read_jsonl

from affectgpt.train import Trainer, find_latest, load_trainable
from affectgpt.train import checkpoint as ckpt


def test_checkpoint_holds_trainable_weights_only(tmp_path, toy_data):
    model = make_model()
    trainer = Trainer(model, toy_data, collate, fast_config(tmp_path, epochs=2))
    trainer.fit()
    folder = tmp_path / "checkpoint-12"
    assert sorted(p.name for p in folder.iterdir()) == sorted(ckpt.FILES)
    weights = load_file(str(folder / "trainable.safetensors"))
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert set(weights) == set(trainable)
    assert not any(k.startswith("encoder.") for k in weights)
    for name, value in weights.items():
        assert torch.equal(value, trainable[name].detach())
    state = json.loads((folder / "trainer_state.json").read_text())
    assert state["step"] == 12 and state["epoch"] == 2
    assert state["sampler"]["data_epoch"] == 2 and state["sampler"]["position"] == 0
    assert state["config"]["batch_size"] == 4
    rng = torch.load(folder / "rng.pt", weights_only=True)
    assert rng["world_size"] == 1 and set(rng["states"][0]) == {"python", "numpy", "torch",
                                                                "cuda"}
    opt = torch.load(folder / "optimizer.pt", weights_only=True)
    n_opt = sum(len(g["params"]) for g in opt["param_groups"])
    assert n_opt == len(trainable)
    assert (tmp_path / "latest").read_text().strip() == "checkpoint-12"
    assert (tmp_path / "config.json").is_file()


def test_keep_last_prunes_old_checkpoints(tmp_path, toy_data):
    cfg = fast_config(tmp_path, epochs=4, keep_last=2)
    Trainer(make_model(), toy_data, collate, cfg).fit()
    assert [s for s, _ in ckpt.list_checkpoints(tmp_path)] == [18, 24]


def test_leftover_temp_and_partial_folders_are_ignored(tmp_path, toy_data):
    Trainer(make_model(), toy_data, collate, fast_config(tmp_path, max_steps=3,
                                                         save_every_steps=3)).fit()
    # a crash in the middle of a later save: a temp folder and a half-written checkpoint
    tmp = tmp_path / ".tmp-checkpoint-9-1234-abcd"
    tmp.mkdir()
    save_file({"head.weight": torch.zeros(4, 16)}, str(tmp / "trainable.safetensors"))
    partial = tmp_path / "checkpoint-99"
    partial.mkdir()
    (partial / "trainable.safetensors").write_bytes(b"garbage")
    (tmp_path / "latest").write_text("checkpoint-99\n")  # even a bad pointer
    assert find_latest(tmp_path) == tmp_path / "checkpoint-3"
    trainer = Trainer(make_model(seed=5), toy_data, collate,
                      fast_config(tmp_path, max_steps=4, save_every_steps=3))
    summary = trainer.fit(resume="auto")
    assert summary["resumed_from"] == str(tmp_path / "checkpoint-3")
    assert not tmp.exists()  # cleaned by the resumed run
    assert (tmp_path / "latest").read_text().strip() == "checkpoint-4"


def test_save_is_atomic_when_writing_fails(tmp_path, monkeypatch):
    def broken_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(ckpt.torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        ckpt.save_checkpoint(tmp_path, 5, weights={"w": torch.ones(2)}, optimizer={},
                             scheduler={}, rng={}, state={"step": 5})
    assert list(tmp_path.iterdir()) == []  # neither a checkpoint nor a temp folder


def test_resume_auto_without_checkpoint_starts_afresh(tmp_path, toy_data):
    summary = Trainer(make_model(), toy_data, collate,
                      fast_config(tmp_path, max_steps=2)).fit(resume="auto")
    assert summary["resumed_from"] is None and summary["step"] == 2
    with pytest.raises(FileNotFoundError):
        Trainer(make_model(), toy_data, collate,
                fast_config(tmp_path / "x")).fit(resume=tmp_path / "nothing")


def test_init_from_loads_trainable_weights_only(tmp_path, toy_data):
    stage1 = make_model(seed=0)
    Trainer(stage1, toy_data, collate, fast_config(tmp_path / "s1", epochs=1)).fit()
    trained = {k: v.clone() for k, v in stage1.trainable_state_dict().items()}

    stage2 = make_model(seed=9)  # different initial weights, frozen encoder included
    frozen_before = {k: v.clone() for k, v in stage2.encoder.state_dict().items()}
    cfg = fast_config(tmp_path / "s2", epochs=1, init_from=str(tmp_path / "s1"), max_steps=1,
                      lr=1e-9, min_lr=1e-9, warmup_steps=0)
    seen = {}
    trainer = Trainer(stage2, ToyDataset(8, seed=1), collate, cfg)
    original = stage2.forward

    def forward(batch):
        if not seen:
            seen.update({k: v.clone() for k, v in stage2.trainable_state_dict().items()})
        return original(batch)

    stage2.forward = forward
    summary = trainer.fit()
    # loaded before the first step: exactly the stage-1 weights
    assert seen.keys() == trained.keys()
    assert all(torch.equal(seen[k], trained[k]) for k in trained)
    # the frozen part is untouched, the optimizer and schedule start afresh
    assert all(torch.equal(v, frozen_before[k]) for k, v in stage2.encoder.state_dict().items())
    assert summary["init_from"]["loaded"] == len(trained)
    assert summary["init_from"]["missing_trainable"] == []
    assert read_jsonl(tmp_path / "s2" / "train_log.jsonl")[0]["step"] == 1
    assert summary["resumed_from"] is None
    # a file path works too, and weights of another model are refused
    assert load_trainable(tmp_path / "s1" / "checkpoint-6" / "trainable.safetensors").keys() \
        == trained.keys()
    # so does a model folder written by AffectGPT.save_pretrained (adapters.safetensors)
    pretrained = tmp_path / "pretrained"
    pretrained.mkdir()
    save_file(trained, str(pretrained / "adapters.safetensors"))
    assert load_trainable(pretrained).keys() == trained.keys()
    bad = tmp_path / "bad.safetensors"
    save_file({"not.a.weight": torch.zeros(1)}, str(bad))
    with pytest.raises(ValueError, match="match nothing"):
        Trainer(make_model(), toy_data, collate,
                fast_config(tmp_path / "s3", init_from=str(bad))).fit()


def test_init_from_reports_missing_trainable_weights(tmp_path, toy_data):
    partial = tmp_path / "partial.safetensors"
    save_file({"head.weight": torch.zeros(4, 16), "head.bias": torch.zeros(4)}, str(partial))
    model = make_model()
    summary = Trainer(model, toy_data, collate,
                      fast_config(tmp_path / "r", init_from=str(partial), max_steps=1)).fit()
    assert summary["init_from"]["loaded"] == 2
    assert "query_tokens" in summary["init_from"]["missing_trainable"]


def test_fresh_run_refuses_an_out_dir_with_checkpoints(tmp_path, toy_data):
    Trainer(make_model(), toy_data, collate, fast_config(tmp_path, epochs=2)).fit()
    with pytest.raises(FileExistsError, match="resume"):
        Trainer(make_model(), toy_data, collate, fast_config(tmp_path, max_steps=1)).fit()
    summary = Trainer(make_model(), toy_data, collate,
                      fast_config(tmp_path, max_steps=1, overwrite=True)).fit()
    assert summary["step"] == 1
    assert [s for s, _ in ckpt.list_checkpoints(tmp_path)] == [1]
    assert len(read_jsonl(tmp_path / "train_log.jsonl")) == 1
