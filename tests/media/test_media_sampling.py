"""The reference frame-sampling rule (``sample_frame_indices``)."""

from __future__ import annotations

import numpy as np
import pytest

from affectgpt.media import sample_frame_indices


def reference_uniform(num_frames: int, n: int) -> list[int]:
    """The reference expression (Video-LLaMA ``load_video`` / MERTools), for comparison only."""
    k = min(n, num_frames)
    indices = np.arange(0, num_frames, num_frames / k).astype(int).tolist()
    while len(indices) < n:
        indices.append(indices[-1])
    return indices[:n]  # MERTools truncates; Video-LLaMA does not (see the n=7 test)


@pytest.mark.parametrize(
    ("num_frames", "expected"),
    [
        (1, [0, 0, 0, 0, 0, 0, 0, 0]),
        (5, [0, 1, 2, 3, 4, 4, 4, 4]),
        (7, [0, 1, 2, 3, 4, 5, 6, 6]),
        (8, [0, 1, 2, 3, 4, 5, 6, 7]),
        (9, [0, 1, 2, 3, 4, 5, 6, 7]),
        (100, [0, 12, 25, 37, 50, 62, 75, 87]),
        (301, [0, 37, 75, 112, 150, 188, 225, 263]),
    ],
)
def test_reference_values_for_eight_frames(num_frames, expected):
    assert sample_frame_indices(num_frames, 8) == expected
    assert sample_frame_indices(num_frames) == expected  # n defaults to 8


def test_matches_reference_expression_for_every_length():
    for num_frames in range(1, 5000):
        assert sample_frame_indices(num_frames, 8) == reference_uniform(num_frames, 8)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6, 7, 9, 16, 32])
def test_other_n_match_reference_prefix(n):
    for num_frames in range(1, 600):
        indices = sample_frame_indices(num_frames, n)
        assert len(indices) == n
        assert indices == reference_uniform(num_frames, n)
        assert all(0 <= i < num_frames for i in indices)
        assert indices == sorted(indices)


def test_reference_arange_overshoots_for_n7_but_we_do_not():
    # np.arange(0, 17, 17/7) has 8 elements, the last (17) out of range.
    raw = np.arange(0, 17, 17 / 7).astype(int).tolist()
    assert len(raw) == 8 and raw[-1] == 17
    assert sample_frame_indices(17, 7) == raw[:7]


def test_invalid_arguments():
    with pytest.raises(ValueError):
        sample_frame_indices(0, 8)
    with pytest.raises(ValueError):
        sample_frame_indices(10, 0)


def test_decoding_api_does_not_import_torch():
    import subprocess
    import sys

    code = (
        "import sys, affectgpt.media as m\n"
        "assert 'torch' not in sys.modules\n"
        "m.read_frames, m.read_audio, m.probe, m.sample_frame_indices\n"
        "assert 'torch' not in sys.modules\n"
        "m.kaldi_fbank\n"
        "assert 'torch' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
