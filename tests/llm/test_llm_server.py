"""The real local server: SmolLM2 exported from the packaged GGUF, served offline."""

from __future__ import annotations

import json

import pytest

from affectgpt.llm import ChatReply, LocalModelServer, ServerError, export_smollm2
from affectgpt.llm.server import find_smollm2_gguf


@pytest.mark.server
def test_export_layout_and_reuse(smollm2_dir):
    assert find_smollm2_gguf().suffix == ".gguf"
    config = json.loads((smollm2_dir / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert "quantization_config" not in config
    assert (smollm2_dir / "model.safetensors").is_file()
    assert (smollm2_dir / "tokenizer.json").is_file()
    assert export_smollm2() == smollm2_dir  # reused, not exported again


def test_export_refuses_partial_folder(tmp_path):
    # an existing non-empty folder without the completion marker is never used or overwritten
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_text("{}")
    with pytest.raises(FileExistsError, match="not a complete export"):
        export_smollm2(tmp_path / "half")


@pytest.mark.server
def test_real_chat_completion_and_cache(llm_server, llm_client):
    assert llm_server.base_url.startswith("http://127.0.0.1:")
    assert llm_server.base_url.endswith("/v1")
    assert llm_server.model == str(llm_server.model_dir)
    messages = [{"role": "user", "content": "Name one emotion."}]
    reply = llm_client.chat(messages, max_tokens=8)
    assert isinstance(reply, ChatReply) and not reply.cached
    assert reply.text.strip()
    assert 0 < reply.usage["completion_tokens"] <= 8
    assert llm_client.calls == 1
    again = llm_client.chat(messages, max_tokens=8)
    assert again.cached and again.text == reply.text
    assert llm_client.calls == 1  # served from the cache
    many = llm_client.chat_many([messages, [{"role": "user", "content": "Say hi."}]],
                                max_tokens=4, progress=False)
    assert all(isinstance(r, ChatReply) and r.text for r in many)
    assert llm_client.calls == 3


@pytest.mark.server
def test_server_that_dies_reports_its_log(tmp_path):
    bad = tmp_path / "broken-model"
    bad.mkdir()
    (bad / "config.json").write_text(json.dumps({"model_type": "no-such-architecture"}))
    server = LocalModelServer(bad, startup_timeout=120)
    with pytest.raises(ServerError) as info:
        server.start()
    assert "exited with code" in str(info.value)
    assert "log tail" in str(info.value)
    assert server.process is None  # stopped and cleaned up


def test_missing_model_folder(tmp_path):
    with pytest.raises(FileNotFoundError):
        LocalModelServer(tmp_path / "nothing")
