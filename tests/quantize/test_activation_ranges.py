"""Streaming activation histograms and the entropy/percentile clips computed from them."""

from __future__ import annotations

import numpy as np
import pytest

from edge_fer.quantize.activation_ranges import (
    BINS,
    AbsHistogram,
    clip_range,
    entropy_top,
    percentile_top,
    strided_sample,
)


def _hist(batches) -> AbsHistogram:
    hist = AbsHistogram()
    for batch in batches:
        hist.add(np.asarray(batch, np.float32))
    return hist


def test_growing_range_merges_bins_exactly():
    rng = np.random.default_rng(0)
    first = np.concatenate([[1.0], rng.uniform(-1, 1, 999)]).astype(np.float32)
    later = np.concatenate([[-3.5], rng.uniform(-3.5, 3.5, 999)]).astype(np.float32)
    hist = _hist([first[None], later[None]])
    assert hist.top == pytest.approx(4.0, rel=1e-3)  # just above the first batch's 1.0, doubled twice
    assert (hist.lowest, hist.highest) == (-3.5, float(later.max()))
    both = np.abs(np.concatenate([first, later]))
    direct = np.bincount((both * (BINS / hist.top)).astype(np.int64), minlength=BINS)
    assert np.array_equal(hist.counts, direct)
    reverse = _hist([later[None], first[None]])  # no doubling: top just above 3.5 from the start
    assert np.array_equal(reverse.counts, np.bincount((both * (BINS / reverse.top)).astype(np.int64), minlength=BINS))


def test_exact_zeros_are_counted_apart():
    values = np.maximum(np.random.default_rng(1).standard_normal((64, 4096)), 0)  # a ReLU output
    hist = _hist(values[:, None])
    assert hist.zeros == int((values == 0).sum()) and hist.counts.sum() == int((values > 0).sum())
    # percentile counts the zeros; KL ignores their spike: the clip of the positive values alone
    assert percentile_top(hist, 99.0) == pytest.approx(np.percentile(values, 99.0), abs=hist.top / BINS)
    positive = _hist(row[row > 0][None] for row in values)  # the same batches without their zeros
    assert np.array_equal(positive.counts, hist.counts) and entropy_top(hist, 255) == entropy_top(positive, 255)
    assert clip_range(hist, "entropy", symmetric=False)[0] == 0.0  # never-negative: uint8 keeps all its levels


def test_entropy_clips_outliers_but_never_more_than_a_tenth_of_a_percent():
    rng = np.random.default_rng(2)
    gauss = rng.standard_normal((64, 1, 4096))
    top = entropy_top(_hist(gauss), 127)
    assert 3.0 < top < 4.5 < np.abs(gauss).max() + 1  # ~3.8 sigma, like TensorRT's calibrator
    lo, hi = clip_range(_hist(gauss), "entropy", symmetric=True)
    assert -hi == lo and (np.abs(gauss) > hi).mean() <= 0.001 + 1e-9
    offset = rng.uniform(-0.998, -0.93, (64, 1, 64))  # like the cosine logits: far from zero, narrow
    lo, hi = clip_range(_hist(offset), "entropy", symmetric=False)
    assert lo < hi and (offset < lo).mean() <= 0.0011


def test_strided_sample_visits_every_position():
    x = np.arange(8 * 4 * 16 * 16, dtype=np.float32).reshape(8, 4, 16, 16)
    sample = strided_sample(x, cap=1000)
    assert len(sample) <= 1000
    positions = sample.astype(np.int64) % (4 * 16 * 16)
    assert len(np.unique(positions % 16)) == 16 and len(np.unique((positions // 16) % 16)) == 16
    assert len(np.unique(positions // 256)) == 4
    small = np.ones((2, 3), np.float32)
    assert strided_sample(small).size == 6
