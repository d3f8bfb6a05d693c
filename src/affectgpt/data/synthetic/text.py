"""The EMER-style gold descriptions (English and Chinese) of a planned clip."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from affectgpt.data import phrases


def _join(items: Sequence[str], conj: str = "and", clauses: bool = False) -> str:
    """``a, b and c`` (words) or ``a, b, and c`` (clauses, which may hold "and" themselves)."""
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    sep = ", " if clauses else " "
    return ", ".join(items[:-1]) + f"{sep}{conj} " + items[-1]


def describe(plan: dict, style: str = "fine") -> tuple[str, str]:
    """The EMER-style gold description (English, Chinese) of a planned clip.

    Only modalities that carry the cue are described (for a neutral clip: the cue
    modality's calm appearance); the conclusion names the gold labels.
    """
    emotion, mods = plan["emotion"], plan["modalities_with_cue"]
    labels = plan["labels"]
    rng = np.random.Generator(np.random.PCG64(plan["noise"]["seed"] + 17))
    syn = phrases.SYNONYMS[emotion]
    zh = phrases.SYNONYMS_ZH[emotion]
    word = labels[1] if len(labels) > 1 else labels[0]
    en_parts: list[str] = []
    zh_parts: list[str] = []
    fine = style == "fine"
    if "video" in mods:
        clues = list(phrases.FACE_CLUES[emotion])
        if plan["face"]["tears"]:
            clues.append(phrases.TEARS_CLUE)
        if not fine:
            clues = clues[:2]
        onset = plan["face"]["expression"]["onset"]
        if emotion == "neutral":
            en = f"In the video, the person speaks with a still face: {_join([c[0] for c in clues], clauses=True)}."
            zh_text = f"在视频中，人物说话时面部没有明显变化：{'，'.join(c[1] for c in clues)}。"
        elif fine:
            en = (f"In the video, the person's face is relaxed at first; about {onset:.1f} seconds "
                  f"in, {_join([c[0] for c in clues], clauses=True)}. These facial clues suggest that the "
                  f"person is {word}.")
            zh_text = (f"在视频中，人物一开始表情放松，大约{onset:.1f}秒后，"
                       f"{'，'.join(c[1] for c in clues)}。这些面部线索表明人物感到{zh[0]}。")
        else:
            en = f"In the video, {_join([c[0] for c in clues], clauses=True)}."
            zh_text = f"在视频中，{'，'.join(c[1] for c in clues)}。"
        en_parts.append(en)
        zh_parts.append(zh_text)
    if "audio" in mods:
        clues = list(phrases.VOICE_CLUES[emotion])[: 2 if fine else 1]
        en = f"In the audio, {_join([c[0] for c in clues], clauses=True)}."
        zh_text = f"在音频中，{'，'.join(c[1] for c in clues)}"
        if fine:
            en += f" The tone of voice sounds {syn[int(rng.integers(len(syn)))]}."
            zh_text += f"，听起来很{zh[int(rng.integers(len(zh)))]}"
        en_parts.append(en)
        zh_parts.append(zh_text + "。")
    if "text" in mods:
        clue_en, clue_zh = phrases.TEXT_CLUES[emotion]
        en = f'In the text, the subtitle says: "{plan["subtitle_en"]}" Here {clue_en}'
        zh_text = f"在文本中，字幕内容为：“{plan['subtitle_zh']}”{clue_zh}"
        if fine and emotion != "neutral":
            en += f", which shows that the person is {word}"
            zh_text += f"，说明人物感到{zh[0]}"
        en_parts.append(en + ".")
        zh_parts.append(zh_text + "。")
    names_en = [phrases.MODALITY_NAMES[m][0] for m in mods]
    names_zh = [phrases.MODALITY_NAMES[m][1] for m in mods]
    if fine:
        if len(mods) > 1:
            lead_en = f"The {_join(names_en)} all point the same way"
        else:
            lead_en = f"Only the {names_en[0]} carries an emotional clue"
            if emotion == "neutral":
                lead_en = f"The {names_en[0]} shows no sign of emotional arousal"
        en_parts.append(f"{lead_en}. Based on these clues, we can infer that the person feels "
                        f"{_join(labels)}. Overall, the person's emotional state is {labels[0]}.")
        zh_parts.append(f"综合{'、'.join(names_zh)}线索，可以推断人物感到"
                        f"{'、'.join(zh[: max(1, len(labels) - 1)])}。")
    else:
        en_parts.append(f"The person seems {_join(labels)}.")
        zh_parts.append(f"人物显得{'、'.join(zh[:2])}。")
    return " ".join(en_parts), "".join(zh_parts)
