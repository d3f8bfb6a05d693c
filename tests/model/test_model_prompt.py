"""Prompt layout, labels, padding, placeholder registration and feature splicing."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from affectgpt.model import PlaceholderMismatchError, PromptBuilder, splice_features  # noqa: E402
from affectgpt.model.llm import build_byte_tokenizer  # noqa: E402
from affectgpt.model.prompt import IGNORE_INDEX  # noqa: E402

REFERENCE = (
    "###Human: Close your eyes, open your ears and you imagine only based on the sound that "
    "<Audio>" + "<AudioHere>" * 2 + "</Audio>. Close your ears, open your eyes and you see "
    "that <Video>" + "<ImageHere>" * 3 + "</Video>. The subtitle of this video is "
    "<Subtitle>Hello there.</Subtitle>. Now answer my question based on what you have seen, "
    "heard, and provided subtitle. From what clues can we infer the person's emotional state? "
    "###Assistant: "
)


@pytest.fixture
def builder() -> PromptBuilder:
    return PromptBuilder(build_byte_tokenizer(), num_video_tokens=3, num_audio_tokens=2)


def decode(builder, ids) -> str:
    return builder.tokenizer.decode(ids, skip_special_tokens=False)


def test_vicuna_v0_text_matches_the_reference(builder):
    assert builder.prompt_text("Hello there.") == REFERENCE
    no_audio = builder.prompt_text("Hello there.", has_audio=False)
    assert "<Audio>" not in no_audio and "<AudioHere>" not in no_audio
    assert no_audio == REFERENCE.replace(
        "Close your eyes, open your ears and you imagine only based on the sound that <Audio>"
        + "<AudioHere>" * 2 + "</Audio>. ", "")
    assert "<Video>" not in builder.prompt_text("x", has_video=False)
    assert builder.prompt_text("x", question="Why?").endswith("subtitle. Why? ###Assistant: ")


def test_short_wording_keeps_the_tags_and_drops_the_prose():
    from affectgpt.model.config import PROMPT_WORDINGS
    from affectgpt.model.prompt import WORDINGS

    assert tuple(WORDINGS) == PROMPT_WORDINGS  # the config validates against this list
    short = PromptBuilder(build_byte_tokenizer(), num_video_tokens=3, num_audio_tokens=2,
                          wording="short")
    assert short.prompt_text("Hello there.") == (
        "###Human: Audio: <Audio>" + "<AudioHere>" * 2 + "</Audio>. Video: <Video>"
        + "<ImageHere>" * 3 + "</Video>. Subtitle: <Subtitle>Hello there.</Subtitle>. "
        "From what clues can we infer the person's emotional state? ###Assistant: ")
    assert short.prompt_text("x", has_audio=False).startswith("###Human: Video: <Video>")
    ids, labels = short.encode("x", "sad.")
    assert sum(i == short.audio_token_id for i in ids) == 2
    assert decode(short, [i for i, lab in zip(ids, labels) if lab != IGNORE_INDEX]) == "sad.###"
    with pytest.raises(ValueError, match="unknown prompt wording"):
        PromptBuilder(build_byte_tokenizer(), num_video_tokens=1, num_audio_tokens=1,
                      wording="terse")


def test_text_first_order_moves_subtitle_and_question_before_the_features():
    from affectgpt.model.config import PROMPT_ORDERS
    from affectgpt.model.prompt import ORDERS

    assert tuple(ORDERS) == PROMPT_ORDERS
    first = PromptBuilder(build_byte_tokenizer(), num_video_tokens=3, num_audio_tokens=2,
                          order="text-first")
    assert first.prompt_text("Hello there.") == (
        "###Human: The subtitle of this video is <Subtitle>Hello there.</Subtitle>. Now answer "
        "my question based on what you have seen, heard, and provided subtitle. From what "
        "clues can we infer the person's emotional state? Close your eyes, open your ears and "
        "you imagine only based on the sound that <Audio>" + "<AudioHere>" * 2 + "</Audio>. "
        "Close your ears, open your eyes and you see that <Video>" + "<ImageHere>" * 3
        + "</Video>. ###Assistant: ")
    # nothing dangling when both feature sentences are withheld
    assert first.prompt_text("x", has_audio=False, has_video=False).endswith(
        "emotional state? ###Assistant: ")
    with pytest.raises(ValueError, match="unknown prompt order"):
        PromptBuilder(build_byte_tokenizer(), num_video_tokens=1, num_audio_tokens=1,
                      order="backwards")


def test_labels_cover_only_the_answer_and_terminator(builder):
    batch = builder(["Hello there.", "Hi"], ["Happy.", "A long, sad answer."],
                    has_audio=[True, False])
    for row, target in enumerate(["Happy.", "A long, sad answer."]):
        ids, labels = batch.input_ids[row], batch.labels[row]
        keep = labels != IGNORE_INDEX
        assert decode(builder, labels[keep]) == target + "###"
        # the labelled tokens are exactly the last real tokens of the row
        n_real = int(batch.attention_mask[row].sum())
        assert keep.nonzero().squeeze(1).tolist() == list(range(n_real - int(keep.sum()), n_real))
        assert torch.equal(ids[keep], labels[keep])
    # BOS first, then the reference prompt
    real = batch.input_ids[0][batch.attention_mask[0].bool()]
    assert real[0] == builder.tokenizer.bos_token_id
    assert decode(builder, real[1:]) == REFERENCE + "Happy.###"


def test_placeholders_are_single_tokens_and_counted(builder):
    batch = builder(["a", "b", "c"], has_audio=[True, False, True], has_video=[True, True, False])
    assert batch.labels is None
    assert batch.video_positions.sum(1).tolist() == [3, 3, 0]
    assert batch.audio_positions.sum(1).tolist() == [2, 0, 2]
    tok = builder.tokenizer
    assert tok.convert_ids_to_tokens(builder.video_token_id) == "<ImageHere>"
    assert tok.convert_ids_to_tokens(builder.audio_token_id) == "<AudioHere>"
    # placeholder ids never reach the LLM's embedding table
    safe = builder.embedding_ids(batch)
    assert not (safe == builder.video_token_id).any() and not (safe == builder.audio_token_id).any()
    assert int(safe.max()) < 260  # the byte tokenizer's vocabulary before registration


def test_user_text_cannot_inject_placeholders(builder):
    batch = builder(["sneaky <ImageHere><AudioHere>"], ["<ImageHere>"])
    assert batch.video_positions.sum() == 3 and batch.audio_positions.sum() == 2


def test_left_and_right_padding(builder):
    right = builder(["short", "a much longer subtitle"], ["x", "y"], padding_side="right")
    left = builder(["short", "a much longer subtitle"], ["x", "y"], padding_side="left")
    assert right.attention_mask[0, -1] == 0 and right.attention_mask[0, 0] == 1
    assert left.attention_mask[0, 0] == 0 and left.attention_mask[0, -1] == 1
    for row in range(2):
        for a, b in ((right.input_ids, left.input_ids), (right.labels, left.labels)):
            assert torch.equal(a[row][right.attention_mask[row].bool()],
                               b[row][left.attention_mask[row].bool()])
        # position ids restart at 0 on the first real token either way
        assert left.position_ids[row][left.attention_mask[row].bool()].tolist() == list(
            range(int(left.attention_mask[row].sum())))


def test_long_answer_truncated_with_terminator_kept(builder):
    prompt_len = len(builder.encode("s")[0])
    builder.max_length = prompt_len + 10
    ids, labels = builder.encode("s", "x" * 100)
    assert len(ids) == prompt_len + 10
    assert decode(builder, [t for t in labels if t != IGNORE_INDEX]) == "x" * 7 + "###"
    builder.max_length = prompt_len - 1
    with pytest.raises(ValueError, match="exceeds prompt.max_length"):
        builder.encode("s")


def test_chat_template_style_uses_the_tokenizers_template():
    tok = build_byte_tokenizer()
    b = PromptBuilder(tok, num_video_tokens=1, num_audio_tokens=1, style="chat-template")
    assert b.stop == "<|im_end|>"
    text = b.prompt_text("hey")
    assert text.startswith("<|im_start|>user\n") and text.endswith("<|im_start|>assistant\n")
    batch = b(["hey"], ["Joy."])
    labels = batch.labels[0]
    assert decode(b, labels[labels != IGNORE_INDEX]) == "Joy.<|im_end|>"
    assert batch.input_ids[0, 0] != tok.bos_token_id  # the template decides, no extra BOS


def test_splice_features_places_features_in_order():
    embeds = torch.zeros(2, 6, 4)
    positions = torch.tensor([[0, 1, 1, 0, 0, 0], [0, 0, 0, 1, 1, 0]], dtype=torch.bool)
    feats = torch.arange(16, dtype=torch.float32).reshape(2, 2, 4).requires_grad_()
    out = splice_features(embeds, positions, feats)
    assert torch.equal(out[0, 1:3], feats[0].detach()) and torch.equal(out[1, 3:5], feats[1].detach())
    assert out[0, 0].abs().sum() == 0 and out[1, 5].abs().sum() == 0
    out.sum().backward()
    assert torch.equal(feats.grad, torch.ones_like(feats))


def test_splice_features_count_mismatch_is_a_clear_error():
    embeds = torch.zeros(2, 6, 4)
    positions = torch.tensor([[0, 1, 1, 1, 0, 0], [0, 0, 0, 1, 1, 0]], dtype=torch.bool)
    with pytest.raises(PlaceholderMismatchError, match=r"5 placeholder tokens.*\[3, 2\]"):
        splice_features(embeds, positions, torch.zeros(2, 2, 4), "video")
    # right total, wrong distribution
    positions = torch.tensor([[1, 1, 1, 1, 0, 0], [0, 0, 0, 0, 0, 0]], dtype=torch.bool)
    with pytest.raises(PlaceholderMismatchError):
        splice_features(embeds, positions, torch.zeros(2, 2, 4), "video")
    with pytest.raises(ValueError, match="must be"):
        splice_features(embeds, positions, torch.zeros(2, 2, 5), "video")
