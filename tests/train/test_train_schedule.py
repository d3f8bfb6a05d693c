"""Learning-rate schedule, AdamW parameter groups and the config."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from train_toys import make_model

from affectgpt.train import TrainConfig, build_optimizer, lr_at, make_scheduler, parameter_groups
from affectgpt.train.schedule import warmup_steps_for

KW = dict(lr=3e-5, min_lr=1e-5, total_steps=100, warmup_steps=10, warmup_start_lr=1e-6)


def test_lr_at_key_steps():
    assert lr_at(0, **KW) == pytest.approx(1e-6 + (3e-5 - 1e-6) * 1 / 10)
    assert lr_at(4, **KW) == pytest.approx(1e-6 + (3e-5 - 1e-6) * 5 / 10)
    assert lr_at(9, **KW) == pytest.approx(3e-5)  # last warm-up step reaches the peak
    assert lr_at(10, **KW) == pytest.approx(3e-5)  # first cosine step: still the peak
    # half-way through the cosine part (p = 0.5): the mean of peak and floor
    half = 10 + (100 - 10 - 1) / 2
    assert lr_at(int(half), **KW) > 2e-5 > lr_at(int(half) + 1, **KW)
    assert lr_at(99, **KW) == pytest.approx(1e-5)  # the last step: exactly min_lr
    assert lr_at(500, **KW) == pytest.approx(1e-5)
    values = [lr_at(s, **KW) for s in range(100)]
    assert all(a <= b for a, b in zip(values[:10], values[1:10]))  # rising warm-up
    assert all(a >= b for a, b in zip(values[10:], values[11:]))  # falling cosine


def test_lr_at_formula_and_no_warmup():
    kw = dict(lr=1.0, min_lr=0.0, total_steps=11, warmup_steps=0)
    assert lr_at(0, **kw) == 1.0
    assert lr_at(5, **kw) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))
    assert lr_at(10, **kw) == pytest.approx(0.0)
    assert warmup_steps_for(1000, None, 0.05) == 50
    assert warmup_steps_for(1000, 7, 0.05) == 7


def test_scheduler_follows_lr_at(tmp_path):
    model = nn.Linear(2, 2)
    opt = build_optimizer(model, lr=3e-5, weight_decay=0.05)
    sched = make_scheduler(opt, **KW)
    seen = []
    for _ in range(100):
        seen.append(opt.param_groups[0]["lr"])
        assert opt.param_groups[0]["lr"] == opt.param_groups[1]["lr"]
        opt.step()
        sched.step()
    assert seen == pytest.approx([lr_at(s, **KW) for s in range(100)], rel=1e-12)
    # the state holds no closure: it round-trips through torch.save(weights_only)
    state = sched.state_dict()
    assert all(fn is None for fn in state.get("lr_lambdas", []))
    torch.save(state, tmp_path / "s.pt")
    assert torch.load(tmp_path / "s.pt", weights_only=True)["last_epoch"] == 100


def test_no_decay_groups():
    model = make_model()
    groups = parameter_groups(model, 0.05)
    decay = dict(zip(groups[0]["param_names"], groups[0]["params"]))
    no_decay = set(groups[1]["param_names"])
    assert groups[0]["weight_decay"] == 0.05 and groups[1]["weight_decay"] == 0.0
    for name in ("query_tokens", "position_embedding.weight", "norm.weight", "norm.bias",
                 "head.bias", "block.norm1.weight", "block.self_attn.in_proj_bias"):
        assert name in no_decay, name
    assert "head.weight" in decay and "block.linear1.weight" in decay
    assert "block.self_attn.in_proj_weight" in decay
    # frozen weights never reach the optimizer
    names = set(decay) | no_decay
    assert not any(n.startswith("encoder.") for n in names)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert names == trainable


def test_optimizer_holds_trainable_only():
    model = make_model()
    opt = build_optimizer(model, lr=1e-3, weight_decay=0.05)
    ids = {id(p) for g in opt.param_groups for p in g["params"]}
    assert ids == {id(p) for p in model.parameters() if p.requires_grad}
    frozen = nn.Linear(2, 2).requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable"):
        parameter_groups(frozen, 0.1)


def test_config_validation_and_presets(tmp_path):
    with pytest.raises(ValueError, match="fp16"):
        TrainConfig(precision="fp16")
    with pytest.raises(ValueError):
        TrainConfig(iters_per_epoch=0)
    s1, s2 = TrainConfig.paper(1), TrainConfig.paper("stage2", out_dir=str(tmp_path))
    assert (s1.iters_per_epoch, s2.iters_per_epoch) == (1000, 88)
    assert (s1.batch_size, s1.epochs, s1.lr, s1.min_lr, s1.weight_decay) == (3, 100, 3e-5, 1e-5,
                                                                             0.05)
    assert s2.out_dir == str(tmp_path) and s2.stage == "stage2"
    path = tmp_path / "c.json"
    path.write_text(s2.to_json())
    assert TrainConfig.from_json(path) == s2
    with pytest.raises(ValueError, match="unknown"):
        TrainConfig.from_dict({"nope": 1})


def test_weights_only_roundtrip_of_optimizer_state(tmp_path):
    model = make_model()
    opt = build_optimizer(model, lr=1e-3, weight_decay=0.05)
    model.head.weight.sum().backward()
    opt.step()
    torch.save(opt.state_dict(), tmp_path / "o.pt")
    state = torch.load(tmp_path / "o.pt", weights_only=True)
    assert state["param_groups"][0]["param_names"] == opt.param_groups[0]["param_names"]
