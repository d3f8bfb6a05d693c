"""Loading the frozen LLM and its tokenizer; LoRA; an identity check of the LLM.

Nothing is downloaded: ``llm.path`` is ``"smollm2"`` (the packaged SmolLM2-135M-Instruct,
exported once by :func:`affectgpt.llm.server.export_smollm2`), a local transformers folder,
or ``"random"`` (a tiny random Llama, deterministic given ``llm.seed``, for tests). The
tokenizer may also be ``"byte"``: a byte-level tokenizer built in code (256 byte tokens +
a few special tokens and a ChatML chat template), so tests need no files at all.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from typing import Any

import torch
from torch import nn

from affectgpt.model.config import ConfigError, LLMConfig, LoRAConfig

BYTE_SPECIAL_TOKENS = ["<pad>", "<s>", "<|im_start|>", "<|im_end|>"]
CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def resolve_llm_dtype(dtype: str, device: torch.device | str | None) -> torch.dtype:
    """``"auto"`` -> bfloat16 on CUDA (when supported), float32 elsewhere."""
    device = torch.device(device) if device is not None else torch.device("cpu")
    if dtype == "auto":
        if device.type == "cuda" and torch.cuda.is_available() and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    names = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if dtype not in names:
        raise ConfigError(f"llm.dtype must be one of auto, {', '.join(names)}; got {dtype!r}")
    return names[dtype]


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map (used by ByteLevel models)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(
        range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def build_byte_tokenizer():
    """A byte-level tokenizer (ids 0-3 special, 4-259 bytes) with a ChatML chat template.

    Deterministic and file-free; every string round-trips exactly.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(BYTE_SPECIAL_TOKENS)}
    mapping = _bytes_to_unicode()
    for b in range(256):
        vocab[mapping[b]] = len(vocab)
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    backend.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<s>",
        eos_token="<|im_end|>",
        pad_token="<pad>",
        additional_special_tokens=["<|im_start|>"],
    )
    tokenizer.chat_template = CHATML_TEMPLATE
    return tokenizer


def _smollm2_dir() -> str:
    from affectgpt.llm.server import export_smollm2

    return str(export_smollm2())


def load_tokenizer(spec: str):
    """``"byte"``, ``"smollm2"`` or a local folder -> a transformers tokenizer."""
    if spec == "byte":
        return build_byte_tokenizer()
    from transformers import AutoTokenizer

    path = _smollm2_dir() if spec == "smollm2" else os.fspath(spec)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"tokenizer folder not found: {path}")
    return AutoTokenizer.from_pretrained(path, local_files_only=True)


def load_llm(cfg: LLMConfig, tokenizer, dtype: torch.dtype) -> nn.Module:
    """The frozen causal LM described by ``cfg`` (weights on the CPU, in ``dtype``)."""
    from transformers import AutoModelForCausalLM

    if cfg.path is None:
        raise ConfigError(
            "llm.path is not set: point it at a local transformers folder of the LLM "
            "(e.g. override llm.path=/models/vicuna-7b-v0), or use 'smollm2' or 'random'")
    if cfg.path == "random":
        return build_random_llm(cfg, tokenizer, dtype)
    path = _smollm2_dir() if cfg.path == "smollm2" else os.fspath(cfg.path)
    if not os.path.isfile(os.path.join(path, "config.json")):
        raise FileNotFoundError(f"no transformers model folder (config.json) at {path}")
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, local_files_only=True)
    hidden = llm_hidden_size(model)
    if cfg.hidden_size is not None and cfg.hidden_size != hidden:
        raise ConfigError(f"llm.hidden_size is {cfg.hidden_size} but the model at {path} has "
                          f"hidden size {hidden}")
    return model


def build_random_llm(cfg: LLMConfig, tokenizer, dtype: torch.dtype) -> nn.Module:
    """A random Llama; the same ``cfg`` (seed) and tokenizer give the same weights.

    Built on the current default device (``with torch.device("cuda"):`` builds a
    7B-sized one directly on the GPU).
    """
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=max(len(tokenizer), cfg.vocab_size or 0),
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_kv_heads,
        max_position_embeddings=4096,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=cfg.vocab_size is None,  # Vicuna-sized heads are untied
        initializer_range=cfg.init_std,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = LlamaForCausalLM(config)
    return model.to(dtype)


def llm_hidden_size(model: nn.Module) -> int:
    config = model.config
    if hasattr(config, "get_text_config"):
        config = config.get_text_config()
    return int(config.hidden_size)


def apply_lora(model: nn.Module, cfg: LoRAConfig) -> nn.Module:
    """Wrap ``model`` with PEFT LoRA adapters (only they train; the base stays frozen)."""
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("LoRA needs the `peft` package (pip install peft)") from exc
    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = [t for t in cfg.targets if t not in names]
    if missing:
        raise ConfigError(f"lora.targets {missing} match no module of the LLM")
    lora = LoraConfig(r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout,
                      target_modules=list(cfg.targets), bias="none", task_type="CAUSAL_LM")
    with warnings.catch_warnings():  # peft calls a deprecated transformers alias
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*",
                                category=FutureWarning)
        return get_peft_model(model, lora)


def llm_fingerprint(model: nn.Module, vocab_size: int, source: str | None) -> dict[str, Any]:
    """What identifies the frozen LLM a checkpoint's adapters were trained against.

    ``embed_sha256`` hashes the input embedding matrix cast to bfloat16, so the same
    weights loaded in float32 or bfloat16 give the same value.
    """
    embed = model.get_input_embeddings().weight.detach()
    data = embed.to("cpu", torch.bfloat16).contiguous().view(torch.int16).numpy()
    base = getattr(model, "base_model", model)
    base = getattr(base, "model", base) if hasattr(model, "peft_config") else model
    n_params = sum(p.numel() for n, p in base.named_parameters() if "lora_" not in n)
    return {
        "source": source,
        "class": type(base).__name__,
        "hidden_size": llm_hidden_size(model),
        "vocab_size": int(vocab_size),
        "num_parameters": int(n_params),
        "embed_sha256": hashlib.sha256(data.tobytes()).hexdigest(),
    }


def resolve_device(device: str, local_rank: int = 0) -> torch.device:
    """``"auto"``: ``cuda:LOCAL_RANK`` when CUDA is available, else CPU."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank)
        return torch.device("cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", local_rank)
    return dev
