"""Calibration sets: stratified seeded sampling, sha256 manifests, corrupt/missing images."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from edge_fer.artifacts.checkpoint import sha256_file
from edge_fer.artifacts.errors import EdgeFerError
from edge_fer.data.dataset import SkipReport
from edge_fer.quantize.calibration import (
    _allocate,
    load_calibration,
    make_manifest,
    parse_manifest,
    read_manifest,
    write_manifest,
)


def small_copy(src: Path, dst: Path, per_class: int = 3, classes: int = 2) -> Path:
    """``per_class`` images of the first ``classes`` class folders of ``src`` under ``dst``."""
    for sub in sorted(p for p in src.iterdir() if p.is_dir())[:classes]:
        (dst / sub.name).mkdir(parents=True)
        for f in sorted(sub.iterdir())[:per_class]:
            shutil.copy(f, dst / sub.name / f.name)
    return dst


def test_allocate_is_proportional_and_exact():
    assert _allocate([10, 30, 60], 10) == [1, 3, 6]
    assert sum(_allocate([7, 3, 5], 8)) == 8
    assert _allocate([2, 3], 100) == [2, 3]


def test_manifest_round_trip_and_stratified(fer_mini, tmp_path):
    val = fer_mini / "val"
    entries = make_manifest(val, 24, seed=0)
    assert len(entries) == 24
    assert len({rel.split("/")[0] for rel, _ in entries}) >= 6  # every well-populated class represented
    assert make_manifest(val, 24, seed=0) == entries
    assert make_manifest(val, 24, seed=1) != entries
    path = tmp_path / "calib.txt"
    write_manifest(path, val, entries)
    text = path.read_text().splitlines()
    assert text[0] == "# edge-fer calibration manifest"
    assert text[1] == f"# root: {val.resolve()}"
    root, back = read_manifest(path)
    assert back == entries and root == val.resolve()
    assert all(sha256_file(root / rel) == sha for rel, sha in back)


def test_manifest_hash_mismatch_and_missing(fer_mini, tmp_path):
    data = small_copy(fer_mini / "val", tmp_path / "data")
    entries = make_manifest(data, 6, seed=0)
    manifest = tmp_path / "m.txt"
    write_manifest(manifest, data, entries)
    changed, gone = entries[0][0], entries[1][0]
    with open(data / changed, "ab") as f:
        f.write(b"x")
    (data / gone).unlink()
    with pytest.raises(EdgeFerError) as e:
        read_manifest(manifest)
    msg = str(e.value)
    assert changed in msg and gone in msg and "changed" in msg and "missing" in msg
    with pytest.raises(EdgeFerError, match="not an edge-fer calibration manifest"):
        parse_manifest(data / entries[2][0])


def test_root_override(fer_mini, tmp_path):
    data = small_copy(fer_mini / "val", tmp_path / "a")
    manifest = tmp_path / "m.txt"
    write_manifest(manifest, data, make_manifest(data, 4, seed=0))
    moved = shutil.move(str(data), str(tmp_path / "b"))
    with pytest.raises(EdgeFerError, match="missing"):
        read_manifest(manifest)
    assert read_manifest(manifest, root=moved)[0] == Path(moved)


def test_load_calibration_skips_corrupt_and_flat_folder(fer_mini, tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    for f in sorted((fer_mini / "val" / "happy").iterdir())[:10]:
        shutil.copy(f, flat / f.name)
    (flat / "zz_corrupt.png").write_bytes(b"not an image")
    skips = SkipReport()
    images, desc = load_calibration(str(flat), 100, 0, skips)
    assert len(images) == 10 and desc["skipped"] == 1 and desc["n_images"] == 10
    assert desc["kind"] == "folder" and len(desc["manifest_sha256"]) == 64
    assert skips.skipped == [str(flat / "zz_corrupt.png")]


def test_load_calibration_manifest_and_too_few(fer_mini, tmp_path):
    data = small_copy(fer_mini / "val", tmp_path / "data", per_class=2)
    manifest = tmp_path / "m.txt"
    write_manifest(manifest, data, make_manifest(data, 4, 0))
    images, desc = load_calibration(str(manifest), 0, 0, SkipReport(), batch_size=4)
    assert len(images) == 4 and desc["kind"] == "manifest" and desc["manifest_sha256"] == sha256_file(manifest)
    with pytest.raises(EdgeFerError, match="fewer than one batch"):
        load_calibration(str(manifest), 0, 0, SkipReport(), batch_size=8)
    with pytest.raises(EdgeFerError, match="no such file"):
        load_calibration(str(tmp_path / "nope"), 4, 0, SkipReport())


def test_embedded_default_warns_through_the_command_once(capsys):
    pytest.importorskip("skimage")
    images, desc = load_calibration(None, 512, 0, SkipReport())
    assert len(images) == 100 and desc["kind"] == "embedded"
    # the library only describes; the command prints it, once per run (a bench used to print it twice)
    assert "300-500" in desc["warning"] and capsys.readouterr().out == ""


def test_relative_root_travels_with_the_manifest(fer_mini, tmp_path, monkeypatch):
    data = small_copy(fer_mini / "val", tmp_path / "shared" / "data", per_class=2)
    (tmp_path / "clone" / "calibration").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "clone")
    write_manifest(Path("calibration/m.txt"), Path("../shared/data"), make_manifest(data, 4, 0))
    assert "# root: ../../shared/data\n" in Path("calibration/m.txt").read_text()  # no absolute local path
    moved = tmp_path / "elsewhere" / "clone"  # the clone and ../shared moved together
    shutil.move(tmp_path / "clone", moved)
    shutil.move(tmp_path / "shared", tmp_path / "elsewhere" / "shared")
    monkeypatch.chdir(tmp_path)
    base, entries = read_manifest(moved / "calibration" / "m.txt")
    assert base.resolve() == (tmp_path / "elsewhere" / "shared" / "data").resolve() and len(entries) == 4


def test_calib_make_default_output_on_a_fresh_install(fer_mini, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from edge_fer.cli import app

    monkeypatch.chdir(tmp_path)  # no calibration/ folder here
    result = CliRunner().invoke(app, ["calib", "make", "--data", str(fer_mini / "val"), "--size", "8"])
    assert result.exit_code == 0, result.output
    assert len(parse_manifest(tmp_path / "calibration" / "fer-mini-val-8.txt")[1]) == 8


def test_shipped_manifest_is_the_recorded_calibration_set(ferplus):
    """calibration/ferplus-train-512.txt lists the 512 images that --calib ferplus/train samples (the results' set)."""
    repo = Path(__file__).resolve().parents[2]
    base, entries = read_manifest(repo / "calibration" / "ferplus-train-512.txt")  # every sha256 checked
    assert base.resolve() == (ferplus / "train").resolve() and len(entries) == 512
    assert entries == make_manifest(ferplus / "train", 512, 0)  # bench/quantize CALIB_SIZE 512, seed 0
