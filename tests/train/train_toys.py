"""A tiny real model and dataset for the trainer tests (CPU, a few milliseconds a step).

Also imported by ``train_ddp_script.py``, which torchrun runs outside pytest."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import Dataset


class ToyDataset(Dataset):
    """``n`` fixed random samples: features ``x`` (8-d), a class ``y`` (0-3), an audio flag."""

    def __init__(self, n: int = 23, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 6, 8, generator=g)
        self.y = torch.randint(0, 4, (n,), generator=g)
        self.audio = torch.rand(n, generator=g) < 0.3

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> dict:
        return {"index": i, "x": self.x[i], "y": self.y[i], "has_audio": bool(self.audio[i])}


def collate(items: list[dict]) -> dict:
    return {"index": torch.tensor([it["index"] for it in items]),
            "x": torch.stack([it["x"] for it in items]),
            "y": torch.stack([it["y"] for it in items]),
            "has_audio": torch.tensor([it["has_audio"] for it in items])}


@dataclass
class Output:
    loss: torch.Tensor
    logits: torch.Tensor


class TinyModel(nn.Module):
    """A frozen "encoder" (with dropout), then a trainable one-layer transformer with query
    tokens, position embeddings, dropout and an optional audio branch."""

    def __init__(self, dim: int = 16, audio_branch: bool = False):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(8, dim), nn.Dropout(0.5))
        self.encoder.requires_grad_(False)
        g = torch.Generator().manual_seed(1234)  # "pretrained": the same in every model
        with torch.no_grad():
            for p in self.encoder.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
        self.query_tokens = nn.Parameter(torch.randn(1, 2, dim) * 0.02)
        self.position_embedding = nn.Embedding(8, dim)
        self.block = nn.TransformerEncoderLayer(dim, nhead=2, dim_feedforward=32, dropout=0.2,
                                                batch_first=True)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 4)
        self.audio_proj = nn.Linear(dim, dim) if audio_branch else None
        self.seen: list[int] = []
        self.forward_calls = 0
        self.crash_after: int | None = None
        self.encoder_training: list[bool] = []

    def forward(self, batch: dict) -> Output:
        self.forward_calls += 1
        if self.crash_after is not None and self.forward_calls > self.crash_after:
            raise KeyboardInterrupt("simulated interruption")
        self.seen.extend(batch["index"].tolist())
        self.encoder_training.append(self.encoder.training)
        with torch.no_grad():
            h = self.encoder(batch["x"])
        h = h + self.position_embedding.weight[: h.shape[1]]
        q = self.query_tokens.expand(h.shape[0], -1, -1)
        h = self.block(torch.cat([q, h], dim=1))[:, :2].mean(1)
        if self.audio_proj is not None and bool(batch["has_audio"].any()):
            h = h + self.audio_proj(h)  # a branch only some batches use
        logits = self.head(self.norm(h))
        return Output(nn.functional.cross_entropy(logits, batch["y"]), logits)

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        return {n: p.detach() for n, p in self.named_parameters() if p.requires_grad}


def make_model(seed: int = 0, **kwargs) -> TinyModel:
    torch.manual_seed(seed)
    return TinyModel(**kwargs)


def fast_config(out_dir, **overrides):
    """A TrainConfig for the toy model: a few steps, no progress bar, no plots."""
    from affectgpt.train import TrainConfig

    base = dict(out_dir=str(out_dir), epochs=2, batch_size=4, grad_accum=1, lr=1e-2,
                min_lr=1e-3, warmup_steps=2, weight_decay=0.05, seed=3, progress=False,
                plots=False, keep_last=None)
    base.update(overrides)
    return TrainConfig(**base)


def read_jsonl(path) -> list[dict]:
    import json

    return [json.loads(line) for line in open(path, encoding="utf-8") if line.strip()]
