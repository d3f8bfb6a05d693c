"""Fixtures for the eval tests: a hand-made emotion wheel whose mappings are checked by hand."""

from __future__ import annotations

import csv

import openpyxl
import pytest


def write_xlsx(path, header, rows):
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(header)
    for r in rows:
        ws.append(r)
    wb.save(path)


@pytest.fixture()
def tiny_wheel_dir(tmp_path):
    """Every wheel: Happy -> {Content: [Pleased], Playful: [Cheeky]}, Sad -> {Lonely: [Isolated]}.
    Wheel 2 instead puts 'pleased' under Sad/Lonely to make wheels disagree."""
    directory = tmp_path / "tiny-wheel"
    directory.mkdir()
    for k in range(1, 6):
        rows = [["Happy", "Content", "Pleased"], [None, "Playful", "Cheeky"], ["Sad", "Lonely", "Isolated"]]
        if k == 2:
            rows = [["Happy", "Content", "Glad"], [None, "Playful", "Cheeky"], ["Sad", "Lonely", "Pleased"]]
        write_xlsx(directory / f"wheel{k}.xlsx", ["level1", "level2", "level3"], rows)
    write_xlsx(directory / "synonym.xlsx", ["word_run1", "synonym_run1", "word_run2", "synonym_run2"], [
        ["happy", "joyful, glad", "Sad", "unhappy, down"],
        ["pleased", "satisfied", None, None],
    ])
    with open(directory / "format.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["name", "format"])
        w.writerow(["joyful", "joyful,joyfully,joyfulness"])
        w.writerow(["satisfied", "satisfied,satisfy,satisfaction"])
        w.writerow(["unhappy", "unhappy,unhappiness"])
        w.writerow(["happy", "happy,happiness"])
        w.writerow(["sad", "sad,sadness"])
    return directory


@pytest.fixture()
def tiny_wheel(tiny_wheel_dir):
    from affectgpt.eval.wheel import WheelResources

    return WheelResources.load(tiny_wheel_dir)
