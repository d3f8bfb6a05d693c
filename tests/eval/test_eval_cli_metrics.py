"""`affectgpt evaluate` run in-process (``affectgpt.cli.main``) on files as users have them:
the authors' released prediction lists (``[],[]``, ``[], ["confused"]``), single-label gold
(a one-label list column, a plain label column) for ``--metric hitrate`` and a score column
for ``--metric sentiment``. Expected numbers are worked out by hand on the hand-made wheel
of ``conftest.py`` (wheels 1, 3, 4, 5 put pleased under Happy, wheel 2 under Sad)."""

from __future__ import annotations

import csv
import json
import re

import pytest

from affectgpt.cli import main
from affectgpt.eval.labels import (
    InnerBracketsError,
    LabelFormatError,
    ReferenceReading,
    parse_label_list,
    read_labels,
)

RELEASED_VALUES = ['[],[]', '[], ["confused"]', "['confused'], []", "[['sad']]"]


def reference_string_to_list(text: str) -> list[str]:
    """MERTools ``string_to_list`` (MER2024/toolkit/utils/functions.py), restated."""
    if text == "":
        return []
    text = text.split("[")[1].split("]")[0]
    return [item for item in re.split("['\"]", text) if item.strip() not in ["", ","]]


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def evaluate(*args) -> int:
    return main(["evaluate", *map(str, args)])


# ------------------------------------------------------------------ released prediction lists
@pytest.mark.parametrize("text", RELEASED_VALUES)
def test_mertools_reads_what_the_reference_reads(text):
    assert parse_label_list(text, "mertools") == [x.lower() for x in reference_string_to_list(text)]
    with pytest.raises(InnerBracketsError, match="brackets inside a label list"):
        parse_label_list(text, "python")


def test_mertools_matches_the_reference_on_the_released_files(mer2024_ov):
    for name in ("check-openset.csv", "predict-openset.csv"):
        raw = read_labels(mer2024_ov / name, syntax="mertools")
        with open(mer2024_ov / name, encoding="utf-8-sig", newline="") as f:
            for row in csv.DictReader(f):
                expected = list(dict.fromkeys(
                    " ".join(x.split()).lower() for x in reference_string_to_list(row["openset"])))
                assert raw[row["name"]] == expected


def test_auto_records_each_value_read_by_the_reference_rule(tmp_path):
    pred = write(tmp_path / "pred.csv",
                 'name,openset\na,"[],[]"\nb,"[], [""confused""]"\nc,"[\'happy\']"\n'
                 'd,"[""confused""], []"\n')
    readings: list[ReferenceReading] = []
    labels = read_labels(pred, syntax="auto", reference_readings=readings)
    assert labels == {"a": [], "b": [], "c": ["happy"], "d": ["confused"]}
    assert [(r.sample, r.text, r.labels) for r in readings] == [
        ("a", "[],[]", ()), ("b", '[], ["confused"]', ()), ("d", '["confused"], []', ("confused",))]
    with pytest.warns(UserWarning) as warned:  # no list to record them in: one warning each
        read_labels(pred, syntax="auto")
    assert [re.search(r"sample '(\w)'", str(w.message)).group(1) for w in warned] == ["a", "b", "d"]
    assert all("first list only" in str(w.message) for w in warned)
    with pytest.raises(LabelFormatError, match=r"--label-syntax mertools.*sample 'a'.*pred\.csv"):
        read_labels(pred, syntax="python")


def test_wheel_metric_on_released_lists(tmp_path, tiny_wheel_dir, capsys):
    gold = write(tmp_path / "gold.csv", "name,openset\na,\"['happy']\"\nb,\"['sad']\"\n"
                                        "c,\"['joyful', 'sad']\"\n")
    pred = write(tmp_path / "pred.csv", 'name,openset\na,"[],[]"\nb,"[], [""unhappy""]"\n'
                                        'c,"[\'happiness\']"\n')
    out = tmp_path / "r.json"
    assert evaluate("--gold", gold, "--pred", pred, "--metric", "wheel",
                    "--wheel-dir", tiny_wheel_dir, "-o", out) == 0
    err = capsys.readouterr().err
    assert "notice: 2 value(s) in" in err and "pred.csv" in err
    assert "a '[],[]' -> []" in err and "b '[], [\"unhappy\"]' -> []" in err
    data = json.loads(out.read_text())
    assert data["config"]["label_syntax_used"] == "python"
    assert [(r["sample"], r["labels"]) for r in data["label_reads_by_reference_rule"]] == [
        ("a", []), ("b", [])]
    # a, b: empty predictions score 0/0; c: gold {happy, sad}, pred {happy}: P 1, R 1/2
    m1 = data["runs"][0]["scores"]["m3-w1-l1"]
    assert (m1["precision"], m1["recall"], m1["num_samples"]) == (pytest.approx(1 / 3), pytest.approx(1 / 6), 3)

    assert evaluate("--gold", gold, "--pred", pred, "--metric", "wheel", "--wheel-dir",
                    tiny_wheel_dir, "--label-syntax", "python") == 2
    err = capsys.readouterr().err
    assert "--label-syntax mertools" in err and "sample 'a'" in err and "pred.csv" in err

    assert evaluate("--gold", gold, "--pred", pred, "--metric", "wheel", "--wheel-dir",
                    tiny_wheel_dir, "--label-syntax", "mertools", "-o", out) == 0
    assert "notice" not in capsys.readouterr().err  # asked for: nothing to announce
    assert json.loads(out.read_text())["runs"][0]["scores"]["m3-w1-l1"] == m1


# ------------------------------------------------------------------------------- hit rate
PRED_SINGLE = ("name,openset\n"
               "a,\"['joyful', 'sad']\"\n"  # gold happy: hit on every wheel
               "b,\"['happiness']\"\n"  # gold sad: miss
               "c,\"['joyful']\"\n"  # gold satisfied: happy on wheels 1,3,4,5 (hit), sad on 2 (miss)
               "d,\"['happy']\"\n")  # gold neutral maps to nothing: skipped


@pytest.mark.parametrize("gold_text, column", [
    ("name,label\na,['happy']\nb,['sad']\nc,['satisfied']\nd,['neutral']\n", "label"),
    ("name,emotion\na,Happy\nb,sad\nc,satisfied\nd,neutral\n", "emotion"),
], ids=["one-label-list-column", "plain-label-column"])
def test_hitrate_cli(tmp_path, tiny_wheel_dir, capsys, gold_text, column):
    gold = write(tmp_path / "gold.csv", gold_text)
    pred = write(tmp_path / "pred.csv", PRED_SINGLE)
    out = tmp_path / "r.json"
    assert evaluate("--gold", gold, "--gold-column", column, "--pred", pred, "--metric", "hitrate",
                    "--wheel-dir", tiny_wheel_dir, "-o", out) == 0
    run = json.loads(out.read_text())["runs"][0]
    for k in (1, 3, 4, 5):
        assert run[f"wheel{k}"] == 2 / 3 and run[f"wheel{k}_samples"] == 3
    assert run["wheel2"] == 1 / 3 and run["wheel2_samples"] == 3
    assert run["mean"] == pytest.approx(0.6, abs=1e-12)  # (4 x 2/3 + 1/3) / 5
    assert "60.00" in capsys.readouterr().out


# ------------------------------------------------------------------------------ sentiment
def test_sentiment_cli(tmp_path, tiny_wheel_dir, capsys):
    gold = write(tmp_path / "mosi.csv", "video_id,score\na,1.5\nb,-2.0\nc,0\nd,0.4\ne,-0.6\nf,1.0\n")
    pred = write(tmp_path / "pred.csv", "video_id,openset\n"
                 "a,['joyful']\n"  # +1 -> positive (gold positive)
                 "b,['unhappy']\n"  # -1 -> negative (gold negative)
                 "c,['sad']\n"  # gold 0: dropped
                 "d,['negative']\n"  # -1 -> negative (gold positive)
                 "e,['-1.2']\n"  # a number is the score itself -> negative (gold negative)
                 "f,\"['satisfaction', 'sad']\"\n")  # (0.6 + -1) / 2 < 0 -> negative (gold positive)
    out = tmp_path / "r.json"
    assert evaluate("--gold", gold, "--gold-column", "score", "--name-column", "video_id",
                    "--pred", pred, "--metric", "sentiment", "--wheel-dir", tiny_wheel_dir,
                    "-o", out) == 0
    run = json.loads(out.read_text())["runs"][0]
    # truth [a T, b F, d T, e F, f T], prediction [T, F, F, F, F]
    # positive: tp 1, fp 0, fn 2 -> F1 1/2 (support 3); negative: tp 2, fp 2, fn 0 -> F1 2/3 (support 2)
    assert run["num_samples"] == 5
    assert run["weighted_f1"] == pytest.approx((0.5 * 3 + 2 / 3 * 2) / 5, abs=1e-12)  # 17/30
    assert run["accuracy"] == pytest.approx(3 / 5, abs=1e-12)
    assert "56.67" in capsys.readouterr().out

    write(gold, "video_id,score\na,high\n")
    assert evaluate("--gold", gold, "--gold-column", "score", "--name-column", "video_id",
                    "--pred", pred, "--metric", "sentiment", "--wheel-dir", tiny_wheel_dir) == 2
    assert "sentiment gold must be a number" in capsys.readouterr().err
