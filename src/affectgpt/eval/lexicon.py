"""Offline label extraction: emotion words found in a description.

For users without an LLM server. The vocabulary comes from WordNet (Debian's
``wordnet-base``): nouns whose frequent senses are feelings (``noun.feeling``: anger,
joy, anxiety), adjectives whose frequent senses derive from or pertain to a feeling
(angry, anxious, cheerful) and the past participles of emotion verbs (worried,
surprised, embarrassed); generic words (emotion, feeling, mood, ...) are excluded. It
is built once (about 15 s) and cached under ``$AFFECTGPT_CACHE/lexical``.

Extraction scans the description sentence by sentence, skips sentences about other
people ("her friend looks worried"), skips negated mentions ("does not seem angry",
"no sign that he is afraid") and returns the emotion words of the main character in
order of first mention, lower-cased, as written (no lemmatisation beyond plurals), so
that the metric's synonym grouping decides what counts as the same emotion.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

LEXICON_VERSION = 1

_GENERIC = frozenset("""
emotion emotions emotional feeling feelings feel mood moods state states attitude expression
sentiment sentiments affect passion temper humor humour spirit spirits heart like liking love
good bad well fine normal nothing something way tone kind sort right wrong sure certain clear
""".split())
_NEGATORS = frozenset({"not", "no", "never", "without", "nor", "neither", "hardly", "barely",
                       "lack", "lacks", "lacking", "cannot", "nothing"})
_CLAUSE_BREAKS = frozenset({",", ";", ":", "but", "however", "although", "though", "yet", "while"})
_OTHER_PEOPLE = re.compile(
    r"^\s*(?:the other\b|another\b|others\b|(?:his|her|their|the)\s+"
    r"(?:friend|friends|colleague|colleagues|partner|mother|father|boss|interlocutor|opponent|"
    r"wife|husband|son|daughter|companion|listener|audience|counterpart)s?\b)", re.I)
_TOKEN = re.compile(r"[a-z]+(?:[-'][a-z]+)*|[,;:]", re.I)
_SENTENCE = re.compile(r"(?<=[.!?。！？])\s+|\n+")


class LexiconExtractor:
    """Find the main character's emotion words in English descriptions."""

    def __init__(self, *, wordnet_dir: str | Path | None = None):
        self.wordnet_dir = wordnet_dir
        self._vocab: frozenset[str] | None = None

    @property
    def vocabulary(self) -> frozenset[str]:
        if self._vocab is None:
            self._vocab = _wordnet_vocabulary(self.wordnet_dir)
        return self._vocab

    def extract(self, text: str) -> list[str]:
        """Emotion labels of the main character in ``text`` (order of first mention)."""
        vocab = self.vocabulary
        labels: dict[str, None] = {}
        for sentence in _SENTENCE.split(text or ""):
            if not sentence.strip() or _OTHER_PEOPLE.match(sentence):
                continue
            tokens = [t.lower() for t in _TOKEN.findall(sentence)]
            negated_until = -1
            for i, token in enumerate(tokens):
                if token in _CLAUSE_BREAKS:
                    negated_until = -1
                    continue
                if token in _NEGATORS or token.endswith("n't"):
                    negated_until = i + 4  # the next few words are in the negation's scope
                    continue
                word = _match(token, tokens[i + 1] if i + 1 < len(tokens) else "", vocab)
                if word and i > negated_until and word not in _GENERIC:
                    labels.setdefault(word, None)
        return list(labels)


def _match(token: str, following: str, vocab: frozenset[str]) -> str | None:
    two = f"{token} {following}"
    if following and two in vocab:
        return two
    if token in vocab:
        return token
    for suffix, repl in (("ies", "y"), ("es", ""), ("s", "")):
        if token.endswith(suffix) and len(token) > len(suffix) + 2 and token[: -len(suffix)] + repl in vocab:
            return token[: -len(suffix)] + repl
    return None


def _wordnet_vocabulary(wordnet_dir: str | Path | None) -> frozenset[str]:
    from affectgpt.eval.lexical import wordnet_reader
    from affectgpt.paths import cache_root

    key = hashlib.sha1(f"{LEXICON_VERSION}:{wordnet_dir}".encode()).hexdigest()[:12]
    path = cache_root() / "lexical" / f"emotion-vocabulary-{key}.json"
    if path.is_file():
        try:
            return frozenset(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            pass
    words = _build_wordnet_vocabulary(wordnet_reader(wordnet_dir))
    from affectgpt.eval.report import write_json

    try:
        write_json(sorted(words), path)
    except OSError:
        pass  # a read-only cache only costs time
    return words


def _build_wordnet_vocabulary(wn) -> frozenset[str]:
    feelings = {s for s in wn.all_synsets("n") if s.lexname() == "noun.feeling"}
    words: set[str] = set()

    def frequent(lemma, pos: str, n: int = 2) -> bool:
        """The lemma's synset is among the word's ``n`` most frequent senses of ``pos``."""
        return lemma.synset() in wn.synsets(lemma.name(), pos)[:n]

    def related_to_feeling(lemma) -> bool:
        return any(r.synset() in feelings for r in lemma.derivationally_related_forms() + lemma.pertainyms())

    for synset in feelings:  # nouns: anger, joy, anxiety, ...
        words.update(lem.name() for lem in synset.lemmas() if frequent(lem, "n"))
    for synset in wn.all_synsets("a"):  # adjectives: angry ~ anger, anxious ~ anxiety, ...
        words.update(lem.name() for lem in synset.lemmas()
                     if related_to_feeling(lem) and (frequent(lem, "a") or frequent(lem, "s")))
    for synset in wn.all_synsets("v"):  # participles: worried, surprised, embarrassed, ...
        for lemma in synset.lemmas():
            if not frequent(lemma, "v", 3):
                continue
            if synset.lexname() == "verb.emotion" or related_to_feeling(lemma):
                words.update(_past_participles(lemma.name()))
    return frozenset(w.replace("_", " ") for w in words if w.islower() and w not in _GENERIC)


def _past_participles(verb: str) -> list[str]:
    """The regular -ed form of a one-word ``verb`` (worry -> worried, stun -> stunned)."""
    if "_" in verb or len(verb) < 3:
        return []
    if verb.endswith("e"):
        form = verb + "d"
    elif verb.endswith("y") and verb[-2] not in "aeiou":
        form = verb[:-1] + "ied"
    elif re.fullmatch(r"[^aeiou]*[aeiou][^aeiouwxy]", verb):
        form = verb + verb[-1] + "ed"
    else:
        form = verb + "ed"
    return [form]
