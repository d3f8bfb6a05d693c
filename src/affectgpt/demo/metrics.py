"""`affectgpt demo --metrics-only`: what synonym grouping does to the 2024 set metric.

A few seconds, no model: the evaluation path of the papers on synthetic emotion
descriptions:

1. For each seeded run, write descriptions of a person's emotional state with gold label
   sets. Descriptions name the gold emotions through synonyms and inflected forms (so
   surface forms differ from the gold labels), mention negated emotions ("not angry")
   and the emotions of other people, like real EMER descriptions do.
2. Extract labels from each description with the offline lexicon extractor.
3. Score the extracted labels with the 2024 set metric, once comparing labels verbatim
   and once with the offline lexical synonym grouping, and print a paper-style table
   (x100, mean ± std over runs). The gap between the two rows is what grouping is for.
4. Write ``results.json`` (per-sample scores) and ``scores.png`` to the run directory.
"""

from __future__ import annotations

import csv
import random
import time
from pathlib import Path

from rich.console import Console

# Emotion concepts with words a describer might use for them (first = gold label).
CONCEPTS: dict[str, list[str]] = {
    "happy": ["happy", "cheerful", "glad", "joyful", "happiness"],
    "sad": ["sad", "sorrowful", "unhappy", "sadness", "melancholy"],
    "angry": ["angry", "furious", "irate", "anger", "enraged"],
    "afraid": ["afraid", "frightened", "scared", "fearful", "fear"],
    "surprised": ["surprised", "astonished", "amazed", "surprise", "astounded"],
    "worried": ["worried", "anxious", "uneasy", "worry", "anxiety"],
    "calm": ["calm", "relaxed", "peaceful", "serene", "tranquil"],
    "disgusted": ["disgusted", "revolted", "repulsed", "disgust", "sickened"],
    "excited": ["excited", "thrilled", "excitement", "eager", "elated"],
    "embarrassed": ["embarrassed", "ashamed", "embarrassment", "humiliated", "abashed"],
    "confused": ["confused", "puzzled", "bewildered", "confusion", "perplexed"],
    "disappointed": ["disappointed", "disappointment", "let down", "disheartened", "dismayed"],
}
CLUES = [
    "In the video, the person {verb} {word}; {pronoun} facial expression shows {noun_phrase}.",
    "The tone of voice sounds {word}, and the speech is {pace}.",
    "From the subtitle, we can infer that {pronoun} is {word}.",
    "{Pronoun} frowns slightly but mainly appears {word}.",
    "Overall, the character seems {word}.",
]
NEGATIONS = ["{Pronoun} does not seem {word}.", "There is no sign that {pronoun} is {word}."]
OTHERS = ["The other person in the scene looks {word}.", "Her friend appears {word} at first."]


def synthesize(n: int, seed: int) -> tuple[dict[str, str], dict[str, list[str]]]:
    """``n`` descriptions and their gold label lists, fully determined by ``seed``."""
    rng = random.Random(seed)
    concepts = sorted(CONCEPTS)
    descriptions, gold = {}, {}
    for i in range(n):
        name = f"demo_{seed:03d}_{i:05d}"
        chosen = rng.sample(concepts, rng.choice([1, 1, 2, 2, 3]))
        others = [c for c in concepts if c not in chosen]
        pronoun = rng.choice(["he", "she"])
        fill = {"pronoun": pronoun, "Pronoun": pronoun.capitalize(), "pace": rng.choice(["fast", "slow"])}
        sentences = []
        for concept in chosen:
            word = rng.choice(CONCEPTS[concept])
            template = rng.choice(CLUES)
            sentences.append(template.format(word=word, verb=rng.choice(["looks", "is"]),
                                             noun_phrase=f"{rng.choice(CONCEPTS[concept])} clearly", **fill))
        if rng.random() < 0.6:
            sentences.append(rng.choice(NEGATIONS).format(word=rng.choice(CONCEPTS[rng.choice(others)]), **fill))
        if rng.random() < 0.4:
            sentences.append(rng.choice(OTHERS).format(word=rng.choice(CONCEPTS[rng.choice(others)])))
        rng.shuffle(sentences)
        descriptions[name] = " ".join(sentences)
        gold[name] = chosen
    return descriptions, gold


def run_demo(out: str | Path = "runs", samples: int = 200, runs: int = 3, seed: int = 0,
             console: Console | None = None) -> Path:
    """Run the demo; returns the run directory."""
    from affectgpt.eval.lexical import LexicalGrouper, lexical_groupings
    from affectgpt.eval.lexicon import LexiconExtractor
    from affectgpt.eval.report import print_table, summary_table, write_json
    from affectgpt.eval.set_metric import evaluate_set, mean_std

    console = console or Console()
    run_dir = Path(out) / time.strftime("demo-metrics-%Y%m%d-%H%M%S")
    run_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    extractor = LexiconExtractor()
    grouper = LexicalGrouper()
    rows: dict[str, list[list[float]]] = {"verbatim": [], "lexical grouping": []}
    results = {"samples_per_run": samples, "runs": []}
    for r in range(runs):
        descriptions, gold = synthesize(samples, seed + r)
        pred = {name: extractor.extract(text) for name, text in descriptions.items()}
        with open(run_dir / f"run{r}-predictions.csv", "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["name", "english", "gold", "openset"])
            for name in descriptions:
                writer.writerow([name, descriptions[name], gold[name], pred[name]])
        verbatim = evaluate_set(gold, pred)
        grouped = evaluate_set(gold, pred, lexical_groupings(gold, pred, grouper=grouper))
        for key, res in (("verbatim", verbatim), ("lexical grouping", grouped)):
            rows[key].append([res.avg, res.accuracy, res.recall])
        results["runs"].append({"seed": seed + r, "verbatim": verbatim.to_dict(),
                                "lexical_grouping": grouped.to_dict()})
    table_rows = [(key, [[v[i] for v in vals] for i in range(3)]) for key, vals in rows.items()]
    table = summary_table(f"Labels extracted from synthetic descriptions ({runs} runs x {samples}): "
                          "2024 set metric, x100, mean±std over runs",
                          ["Avg", "Accuracy_s", "Recall_s"], table_rows)
    results["summary"] = {key: {col: dict(zip(("mean", "std"), mean_std([v[i] for v in vals])))
                                for i, col in enumerate(["avg", "accuracy", "recall"])}
                          for key, vals in rows.items()}
    results["seconds"] = time.perf_counter() - started
    print_table(table, console)
    write_json(results, run_dir / "results.json")
    _plot(rows, run_dir / "scores.png")
    console.print(f"demo finished in {results['seconds']:.1f} s; results in {run_dir}/ "
                  "(results.json, scores.png, run*-predictions.csv)")
    return run_dir


def _plot(rows: dict[str, list[list[float]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    metrics = ["Avg", "Accuracy_s", "Recall_s"]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    width = 0.38
    for k, (key, vals) in enumerate(rows.items()):
        arr = 100 * np.asarray(vals)
        ax.bar(np.arange(3) + (k - 0.5) * width, arr.mean(0), width, yerr=arr.std(0), label=key, capsize=3)
    ax.set_xticks(np.arange(3), metrics)
    ax.set_ylabel("score (x100)")
    ax.set_ylim(0, 100)
    ax.set_title("Extracted labels vs gold: effect of synonym grouping")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
