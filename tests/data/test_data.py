"""Folder datasets, class aliases, corrupt images and the one preprocessing function."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_fer.artifacts.errors import EdgeFerError
from edge_fer.data.augment import Augment, class_weights
from edge_fer.data.dataset import SkipReport, canonical_class, load_images, load_splits, scan_folder
from edge_fer.data.preprocessing import Preprocessing, preprocess


def _write_set(root: Path, classes: dict[str, int], size: int = 48) -> None:
    rng = np.random.default_rng(0)
    for name, n in classes.items():
        (root / name).mkdir(parents=True)
        for i in range(n):
            cv2.imwrite(str(root / name / f"{i}.png"), rng.integers(0, 255, (size, size), dtype=np.uint8))


def test_aliases_map_to_canonical_names() -> None:
    assert [canonical_class(n) for n in ["Happiness", "saddness", "Anger", "surprised", "pain", "neutral"]] == [
        "happy", "sad", "angry", "surprise", "pain", "neutral"]


def test_seed_classes_with_pain_and_split_from_train(tmp_path: Path) -> None:
    seed = {"happiness": 6, "sadness": 6, "neutral": 6, "surprise": 6, "fear": 6, "disgust": 6, "pain": 6}
    _write_set(tmp_path / "train", seed)
    splits = load_splits(tmp_path, val_fraction=0.2, seed=1)
    assert splits["train"].classes == ["disgust", "fear", "happy", "neutral", "pain", "sad", "surprise"]
    assert set(splits["val"].counts().values()) == {1}
    assert len(splits["train"]) + len(splits["val"]) == 42
    again = load_splits(tmp_path, val_fraction=0.2, seed=1)
    assert again["val"].paths == splits["val"].paths  # fixed seed: same split


def test_fer_mini_layout(fer_mini: Path) -> None:
    splits = load_splits(fer_mini)
    assert splits["train"].classes == ["angry", "contempt", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
    assert len(splits["train"]) == 2495 and len(splits["val"]) == 549 and len(splits["test"]) == 546
    assert splits["test"].counts()["contempt"] == 13


def test_corrupt_and_empty_files_are_skipped_and_counted(tmp_path: Path) -> None:
    _write_set(tmp_path, {"happy": 3, "sad": 3})
    (tmp_path / "sad" / "zero.png").write_bytes(b"")
    (tmp_path / "sad" / "junk.jpg").write_bytes(b"not an image at all")
    folder = scan_folder(tmp_path)
    skips = SkipReport()
    images, kept = load_images(folder.paths, skips)
    assert len(images) == 6 and len(kept) == 6
    assert len(skips.skipped) == 2 and "2 unreadable images" in skips.summary()


def test_empty_class_folder_and_single_class_are_clear_errors(tmp_path: Path) -> None:
    _write_set(tmp_path / "a", {"happy": 2, "sad": 2})
    (tmp_path / "a" / "fear").mkdir()
    with pytest.raises(EdgeFerError, match=r"fear.*no images"):
        scan_folder(tmp_path / "a")
    _write_set(tmp_path / "b", {"happy": 2})
    with pytest.raises(EdgeFerError, match="need at least 2"):
        scan_folder(tmp_path / "b")


def test_preprocess_gray_and_colour_agree_and_normalise() -> None:
    gray = np.full((48, 48), 255, np.uint8)
    colour = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
    spec = Preprocessing(img_size=64)
    out = preprocess([gray, colour], spec)
    assert out.shape == (2, 3, 64, 64) and out.dtype == np.float32
    assert np.allclose(out, 1.0)  # (1 - 0.5) / 0.5
    assert np.allclose(preprocess([np.zeros((10, 20), np.uint8)], spec), -1.0)
    scale, offset = spec.scale_offset
    assert np.isclose(scale * (255 - offset), 1.0)


def test_augment_keeps_shape_and_type_and_weights_are_mean_one() -> None:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (48, 48), dtype=np.uint8)
    out = Augment()(img, rng)
    assert out.shape == (48, 48) and out.dtype == np.uint8
    labels = np.array([0] * 90 + [1] * 10)
    for mode in ("none", "sqrt", "full"):
        w = class_weights(labels, 3, mode)
        assert np.isclose(w[labels].mean(), 1.0) and w[2] == 0
    full = class_weights(labels, 2, "full")
    assert np.isclose(full[1] / full[0], 9.0)


def test_random_erasing_hides_one_patch_of_the_asked_size() -> None:
    still = Augment(flip=0, max_rotate_deg=0, zoom=(1, 1), max_shift=0, brightness=0, contrast=(1, 1), erase=1.0)
    img = np.full((64, 64), 128, np.uint8)
    for seed in range(20):
        changed = still(img, np.random.default_rng(seed)) != 128
        rows, cols = np.nonzero(changed.any(1))[0], np.nonzero(changed.any(0))[0]
        box = (rows[-1] - rows[0] + 1) * (cols[-1] - cols[0] + 1)
        assert 0.01 * 64 * 64 <= box <= 0.25 * 64 * 64  # one rectangle, 2-20% of the image (rounding aside)
    assert (Augment(erase=0.0, flip=0, max_rotate_deg=0, zoom=(1, 1), max_shift=0, brightness=0,
                    contrast=(1, 1))(img, np.random.default_rng(0)) == 128).all()


def test_vote_distributions_from_labels_csv(tmp_path) -> None:
    """FER+ votes -> target distributions: names mapped, single votes dropped, unknown/NF ignored."""
    from edge_fer.data.votes import vote_distributions

    (tmp_path / "train" / "sad").mkdir(parents=True)
    (tmp_path / "labels.csv").write_text(
        "path,votes_neutral,votes_happiness,votes_sadness,votes_anger,votes_unknown,votes_NF\n"
        "train/sad/a.png,4,1,5,0,0,0\n"          # happiness single vote dropped -> neutral .444, sad .556
        "train/sad/b.png,0,0,1,1,8,0\n")         # only single votes left -> keeps its one-hot folder label
    classes = ["angry", "happy", "neutral", "sad"]
    paths = [tmp_path / "train/sad/a.png", tmp_path / "train/sad/b.png", tmp_path / "train/sad/c.png"]
    targets, found = vote_distributions(tmp_path, paths, np.array([3, 3, 3]), classes)
    assert found == 1
    np.testing.assert_allclose(targets[0], [0, 0, 4 / 9, 5 / 9], atol=1e-6)
    np.testing.assert_array_equal(targets[1], [0, 0, 0, 1])
    np.testing.assert_array_equal(targets[2], [0, 0, 0, 1])  # no row: folder label


def test_vote_distributions_on_fer_mini_agree_with_majority_labels(fer_mini) -> None:
    from edge_fer.data.votes import vote_distributions

    train = scan_folder(fer_mini / "train")
    targets, found = vote_distributions(fer_mini, train.paths, train.labels, train.classes)
    assert found == len(train)
    assert (targets.argmax(1) == train.labels).all()  # the majority rule picks the largest share
    assert (targets.max(1) < 1).mean() > 0.3  # most images carry a real distribution


def test_class_weight_balance_modes() -> None:
    labels = np.array([0] * 90 + [1] * 10)
    full, sqrt, none = (class_weights(labels, 3, m) for m in ("full", "sqrt", "none"))
    for w in (full, sqrt, none):
        assert abs(w[labels].mean() - 1.0) < 1e-5 and w[2] == 0  # mean 1 over samples; absent class 0
    assert full[1] / full[0] == pytest.approx(9.0, rel=1e-5)
    assert sqrt[1] / sqrt[0] == pytest.approx(3.0, rel=1e-5)
    assert none[0] == none[1]


def test_counts_read_as_english() -> None:
    from edge_fer.artifacts.text import count
    from edge_fer.data.dataset import SkipReport

    assert (count(1, "image"), count(0, "image"), count(3, "face")) == ("1 image", "0 images", "3 faces")
    skips = SkipReport()
    skips.add("a.png")
    assert skips.summary().startswith("1 unreadable image skipped")
