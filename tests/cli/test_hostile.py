"""Every command against hostile input, through the real CLI in a subprocess (issue 13).

A user points edge-fer at folders holding files they care about, and an attacker may
have write access to a dataset folder or a model file.  For each case here:

* the exit code is non-zero and exactly one ``error:`` line names the file (no traceback);
* every file of the case folder is byte-identical afterwards (sha256 before and after);
* nothing is created outside the output path, and the private TMPDIR is left empty;
* under SIGINT/SIGTERM at several points of export and quantize, no temp or partial file
  is left, and a model never stands beside a report of another run;
* the memory cases stay under 2 GB peak RSS.

The checkpoint is tiny (width 0.25, 64 px) so that the whole file runs in a few minutes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from conftest import FER_CLASSES as CLASSES
from safetensors.torch import load_file, save_file

from edge_fer.artifacts.checkpoint import Checkpoint, save_checkpoint
from edge_fer.data.faces import embedded_faces
from edge_fer.data.preprocessing import Preprocessing
from edge_fer.export.onnx_export import ExportOptions, export_checkpoint
from edge_fer.model.fernet import FERNet, FERNetConfig

REPO = Path(__file__).resolve().parents[2]
MEMORY_LIMIT_MB = 2048


# ----------------------------------------------------------------------------- running the CLI


@dataclass
class Result:
    rc: int
    output: str
    peak_rss_mb: float
    seconds: float

    @property
    def errors(self) -> list[str]:
        return [line for line in self.output.splitlines() if line.startswith("error:")]


def _snapshot(root: Path) -> dict[str, str]:
    """Relative path -> sha256 (files), target (symlinks) or 'dir'."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_symlink():
            out[rel] = "link:" + os.readlink(p)
        elif p.is_dir():
            out[rel] = "dir"
        else:
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


class Case:
    """One case folder: its inputs, a private TMPDIR, and the CLI run against them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp = root.parent / (root.name + "-tmpdir")
        self.tmp.mkdir(parents=True, exist_ok=True)

    def run(self, *args: str, outputs: tuple[str, ...] = (), signal_after: float | None = None,
            sig: int = signal.SIGTERM, env: dict | None = None, timeout: float = 900, fork: bool = True) -> Result:
        """Run ``edge-fer ARGS`` in the case folder; check inputs untouched and nothing written beside ``outputs``.

        ``fork``: in a subprocess (signals, peak RSS, a fresh interpreter); ``False`` runs the same
        typer app in this process, for the many variants of one command (no ~3 s of imports each).
        """
        before = _snapshot(self.root)
        res = self._subprocess(args, signal_after, sig, env, timeout) if fork else self._in_process(args, env)
        after = _snapshot(self.root)

        def allowed(rel: str) -> bool:
            return any(rel == o or rel.startswith(o.rstrip("/") + "/") for o in outputs)

        changed = sorted(rel for rel, h in before.items() if after.get(rel) != h and not allowed(rel))
        assert not changed, f"inputs changed or removed: {changed}\n{res.output}"
        created = sorted(rel for rel in set(after) - set(before) if not allowed(rel))
        assert not created, f"created outside {outputs}: {created}\n{res.output}"
        left = sorted(p.name for p in self.tmp.iterdir() if p.name != ".ses")  # ONNX Runtime's import writes it
        assert not left, f"left in TMPDIR: {left}\n{res.output}"
        return res


    def _subprocess(self, args, signal_after, sig, env, timeout) -> Result:
        environ = {**os.environ, "PYTHONPATH": str(REPO), "TMPDIR": str(self.tmp), "OMP_NUM_THREADS": "1",
                   "COLUMNS": "300", **(env or {})}
        environ.pop("EDGE_FER_DEBUG", None)
        log = self.tmp.parent / f"{self.root.name}.log"
        start = time.perf_counter()
        with open(log, "w") as f:
            proc = subprocess.Popen([sys.executable, "-m", "edge_fer.cli", *args], cwd=self.root, env=environ,
                                    stdout=f, stderr=subprocess.STDOUT)
            sent = signal_after is None
            while True:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                elapsed = time.perf_counter() - start
                if not sent and elapsed >= signal_after:
                    proc.send_signal(sig)
                    sent = True
                if elapsed > timeout:
                    proc.kill()
                time.sleep(0.02)
        output = log.read_text()
        log.unlink()
        return Result(os.waitstatus_to_exitcode(status), output, usage.ru_maxrss / 1024, time.perf_counter() - start)

    def _in_process(self, args, env) -> Result:
        from typer.testing import CliRunner

        from edge_fer.cli import app

        cwd, tmpdir = Path.cwd(), tempfile.tempdir
        start = time.perf_counter()
        try:
            os.chdir(self.root)
            tempfile.tempdir = str(self.tmp)
            result = CliRunner().invoke(app, list(args), env={"COLUMNS": "300", "EDGE_FER_DEBUG": None, **(env or {})})
        finally:
            os.chdir(cwd)
            tempfile.tempdir = tmpdir
        escaped = result.exception is not None and not isinstance(result.exception, SystemExit)
        assert not escaped, f"{type(result.exception).__name__} escaped the CLI's error boundary: {result.exception}"
        return Result(result.exit_code, result.output, 0.0, time.perf_counter() - start)


def refused(res: Result, *names: str) -> str:
    """Non-zero exit, exactly one error line naming ``names``, no traceback; returns that line."""
    assert res.rc != 0, res.output
    assert "Traceback" not in res.output, res.output
    assert len(res.errors) == 1, res.output
    for name in names:
        assert name in res.errors[0], res.output
    return res.errors[0]


def usage_error(res: Result, option: str) -> None:
    """Rejected by typer at parse time (exit 2), before any work."""
    assert res.rc == 2 and f"'{option}'" in res.output and "Traceback" not in res.output, res.output


# ----------------------------------------------------------------------------- the corpus


def write_png_bomb(path: Path, side: int) -> None:
    """A grey PNG of side x side pixels written row by row (a few hundred KB on disk, side² bytes decoded)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    comp = zlib.compressobj(9)
    row = b"\0" + b"\x80" * side
    body = b"".join(comp.compress(row) for _ in range(side)) + comp.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", body) + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Tiny checkpoint, its ONNX (dynamic and static batch), a 2-class image folder, an image outside it."""
    root = tmp_path_factory.mktemp("corpus")
    model = FERNet(FERNetConfig(num_classes=8, img_size=64, width=0.25))
    ckpt = Checkpoint(model, CLASSES, Preprocessing(64))
    save_checkpoint(ckpt, root / "ckpt")
    from edge_fer.artifacts.checkpoint import load_checkpoint
    faces = embedded_faces()
    export_checkpoint(load_checkpoint(root / "ckpt"), root / "model.onnx", faces[:16])
    export_checkpoint(load_checkpoint(root / "ckpt"), root / "static.onnx", faces[:16],
                      ExportOptions(dynamic_batch=False))
    for c, name in enumerate(("angry", "happy")):
        (root / "data" / name).mkdir(parents=True)
        for i in range(8):
            cv2.imwrite(str(root / "data" / name / f"{i:02d}.png"), faces[c * 8 + i])
    (root / "outside").mkdir()
    cv2.imwrite(str(root / "outside" / "secret.png"), faces[50])
    return root


@pytest.fixture()
def case(corpus: Path, tmp_path: Path, request) -> Case:
    """A fresh copy of the corpus (symlinks kept) for one test."""
    folder = tmp_path / "case"
    shutil.copytree(corpus, folder, symlinks=True)
    return Case(folder)


def edit_json(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def with_metadata(src: Path, dst: Path, **props: str) -> None:
    model = onnx.load(str(src))
    for p in model.metadata_props:
        if p.key in props:
            p.value = props[p.key]
    onnx.save_model(model, str(dst))


# ----------------------------------------------------------------------------- 1. data loss


def test_quantize_report_never_replaces_a_checkpoints_metadata(case: Case) -> None:
    res = case.run("quantize", "model.onnx", "-o", "ckpt/model.onnx")
    refused(res, "ckpt/model.json")
    assert not (case.root / "ckpt" / "model.onnx").exists()


def test_quantize_onto_its_input_is_refused(case: Case) -> None:
    refused(case.run("quantize", "model.onnx", "-o", "model.onnx", fork=False), "model.onnx")
    os.link(case.root / "model.onnx", case.root / "hardlink.onnx")  # same file, other name
    refused(case.run("quantize", "model.onnx", "-o", "hardlink.onnx", fork=False), "hardlink.onnx")


def test_export_onto_the_checkpoint_is_refused(case: Case) -> None:
    refused(case.run("export", "ckpt", "-o", "ckpt/model.safetensors"), "ckpt/model.safetensors")


def test_predict_never_overwrites_an_input_video_or_image(case: Case) -> None:
    writer = cv2.VideoWriter(str(case.root / "x.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 5.0, (64, 64))
    for i in range(3):
        writer.write(np.full((64, 64, 3), 40 * i, np.uint8))
    writer.release()
    (case.root / "x.annotated.mp4").write_bytes(b"the user's own video")
    refused(case.run("predict", "x.mp4", "x.annotated.mp4", "-o", ".", "--engine", "model.onnx"),
            "x.annotated.mp4")
    refused(case.run("predict", "data/angry/00.png", "-o", "data/angry", "--engine", "model.onnx", "--no-detect",
                     fork=False), "00.png")


def test_predict_leaves_a_foreign_predictions_json_alone(case: Case) -> None:
    (case.root / "out").mkdir()
    (case.root / "out" / "predictions.json").write_text('{"mine": true}')
    refused(case.run("predict", "data/angry/00.png", "-o", "out", "--engine", "model.onnx", "--no-detect",
                     fork=False), "out/predictions.json")


def test_calib_make_never_writes_over_an_image_or_a_foreign_file(case: Case) -> None:
    refused(case.run("calib", "make", "--data", "data", "--size", "4", "-o", "data/angry/00.png"),
            "data/angry/00.png")
    (case.root / "notes.txt").write_text("my notes")
    refused(case.run("calib", "make", "--data", "data", "--size", "4", "-o", "notes.txt", fork=False), "notes.txt")


# ----------------------------------------------------------------------------- 2. reads outside the root


def _manifest(case: Case, lines: list[str], name: str = "m.txt") -> str:
    (case.root / name).write_text("# edge-fer calibration manifest\n" + f"# root: {case.root / 'data'}\n"
                                  + "\n".join(lines) + "\n")
    return name


@pytest.mark.parametrize("entry", ["/etc/passwd", "../../../../etc/passwd", "angry/../../outside/secret.png",
                                   "./angry/00.png", "angry//00.png"])
def test_manifest_entries_must_stay_relative_and_normalised(case: Case, entry: str) -> None:
    sha = hashlib.sha256(Path("/etc/passwd").read_bytes()).hexdigest() if "passwd" in entry else "0" * 64
    name = _manifest(case, [f"{sha}  {entry}"])
    res = case.run("quantize", "model.onnx", "--calib", name, "-o", "q.onnx", fork=entry == "/etc/passwd")
    refused(res, f"{name}:3", entry)


def test_hash_mismatch_does_not_tell_whether_a_path_exists(case: Case) -> None:
    wrong = "1" * 64
    lines = {}
    for rel in ("angry/00.png", "angry/nope.png"):
        name = _manifest(case, [f"{wrong}  {rel}"], f"{Path(rel).stem}.txt")
        lines[rel] = refused(case.run("quantize", "model.onnx", "--calib", name, "-o", "q.onnx", fork=False), rel)
    exists, missing = (lines[r].replace(r, "X").replace(f"{Path(r).stem}.txt", "M") for r in lines)
    assert exists == missing


def test_symlinks_out_of_the_data_folder_are_skipped_and_counted(case: Case) -> None:
    os.symlink(case.root / "outside" / "secret.png", case.root / "data" / "angry" / "zz-link.png")
    os.symlink(case.root / "outside", case.root / "data" / "fear")
    os.symlink(case.root / "data" / "angry" / "00.png", case.root / "data" / "happy" / "inside.png")  # fine
    res = case.run("calib", "make", "--data", "data", "--size", "100", "-o", "calib.txt", outputs=("calib.txt",))
    assert res.rc == 0, res.output
    text = (case.root / "calib.txt").read_text()
    assert "secret" not in text and "zz-link" not in text and "fear/" not in text and "happy/inside.png" in text
    assert "2 symlinks leaving the folder skipped" in res.output
    secret = hashlib.sha256((case.root / "outside" / "secret.png").read_bytes()).hexdigest()
    assert secret not in text


def test_a_manifest_entry_that_links_outside_is_a_mismatch(case: Case) -> None:
    os.symlink(case.root / "outside" / "secret.png", case.root / "data" / "angry" / "zz-link.png")
    sha = hashlib.sha256((case.root / "outside" / "secret.png").read_bytes()).hexdigest()
    name = _manifest(case, [f"{sha}  angry/zz-link.png"])
    refused(case.run("quantize", "model.onnx", "--calib", name, "-o", "q.onnx", fork=False), "angry/zz-link.png")


# ----------------------------------------------------------------------------- 3. memory


@pytest.mark.parametrize("change", [{"width": 40}, {"width": 4.0}, {"stack": [[1, 8192, True]] * 32}])
def test_a_huge_architecture_fails_before_anything_is_allocated(case: Case, change: dict) -> None:
    edit_json(case.root / "ckpt" / "model.json", lambda m: m["architecture"].update(change))
    res = case.run("export", "ckpt", "-o", "x.onnx")
    refused(res, "ckpt/model.")
    assert res.peak_rss_mb < MEMORY_LIMIT_MB and res.seconds < 30


def test_a_decompression_bomb_png_is_capped(case: Case) -> None:
    write_png_bomb(case.root / "bomb.png", 20000)
    assert (case.root / "bomb.png").stat().st_size < 2_000_000
    res = case.run("predict", "bomb.png", "--engine", "model.onnx", "--no-detect")
    refused(res, "bomb.png", "50 MP")
    assert res.peak_rss_mb < MEMORY_LIMIT_MB
    # among readable images it is skipped and counted; the cap is configurable
    res = case.run("predict", "bomb.png", "data/angry/00.png", "--engine", "model.onnx", "--no-detect")
    assert res.rc == 0 and "1 unreadable image skipped" in res.output and res.peak_rss_mb < MEMORY_LIMIT_MB
    write_png_bomb(case.root / "big.png", 3000)
    res = case.run("predict", "big.png", "--engine", "model.onnx", "--no-detect",
                   env={"EDGE_FER_MAX_PIXELS": "1000000"})
    refused(res, "big.png", "1 MP")


def test_a_device_named_like_an_image_is_never_read(case: Case) -> None:
    os.symlink("/dev/zero", case.root / "zero.png")
    res = case.run("predict", "zero.png", "--engine", "model.onnx", "--no-detect")
    refused(res, "zero.png")
    assert res.peak_rss_mb < MEMORY_LIMIT_MB


def test_an_oversized_metadata_file_is_refused_unread(case: Case) -> None:
    meta = case.root / "ckpt" / "model.json"
    meta.write_text(meta.read_text()[:-2] + ', "pad": "' + "x" * (17 << 20) + '"}')
    refused(case.run("info", "ckpt", fork=False), "ckpt/model.json", "too large")


# ----------------------------------------------------------------------------- 4. interrupts


def _left_over(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") or p.name.endswith(".tmp"))


def _interrupt_points(case: Case, args: tuple[str, ...], outputs: tuple[str, ...]) -> list[Result]:
    """One full run to time it, then SIGINT and SIGTERM in turn at 30%, 55%, 80% and 97% of its time."""
    full = case.run(*args, outputs=outputs)
    assert full.rc == 0, full.output
    results = []
    for fraction, sig in ((0.3, signal.SIGINT), (0.55, signal.SIGTERM), (0.8, signal.SIGINT), (0.97, signal.SIGTERM)):
        res = case.run(*args, outputs=outputs, signal_after=fraction * full.seconds, sig=sig)
        assert _left_over(case.root / "out") == [], res.output
        results.append(res)
    return results


def test_export_interrupted_anywhere_leaves_no_temp_file(case: Case) -> None:
    (case.root / "out").mkdir()
    for res in _interrupt_points(case, ("export", "ckpt", "-o", "out/m.onnx"), ("out",)):
        assert res.rc in (0, 1, 130, 143, -signal.SIGINT, -signal.SIGTERM), res.output
        if (case.root / "out" / "m.onnx").exists():
            onnx.checker.check_model(onnx.load(str(case.root / "out" / "m.onnx")))


def test_quantize_interrupted_anywhere_leaves_model_and_report_of_one_run(case: Case) -> None:
    (case.root / "out").mkdir()
    res = case.run("quantize", "model.onnx", "-o", "out/q.onnx", "--method", "minmax", outputs=("out",))
    assert res.rc == 0, res.output
    args = ("quantize", "model.onnx", "-o", "out/q.onnx", "--method", "entropy")
    for res in _interrupt_points(case, args, ("out",)):
        model = onnx.load(str(case.root / "out" / "q.onnx"))
        method = {p.key: p.value for p in model.metadata_props}["edge_fer.quant_method"]
        report = json.loads((case.root / "out" / "q.json").read_text())
        assert report["method"] == method, res.output  # never an entropy model beside a minmax report


# ----------------------------------------------------------------------------- 5. verification that cannot fail


def test_nan_logits_fail_export_verification(case: Case) -> None:
    weights = case.root / "ckpt" / "model.safetensors"
    state = load_file(str(weights))
    state["head.weight"][:] = float("nan")
    save_file(state, str(weights), metadata={"format": "edge-fer-checkpoint/1"})
    refused(case.run("export", "ckpt", "-o", "x.onnx"), "x.onnx", "non-finite")


def test_a_nan_tolerance_is_refused(case: Case) -> None:
    usage_error(case.run("export", "ckpt", "-o", "x.onnx", "--tolerance", "nan"), "--tolerance")
    usage_error(case.run("export", "ckpt", "-o", "x.onnx", "--tolerance", "-1", fork=False), "--tolerance")


# ----------------------------------------------------------------------------- 6. ssh


@pytest.mark.parametrize(("option", "value", "named"), [
    ("--host", "-oProxyCommand=touch pwned", "--host"),
    ("--host", "me@jetson;rm -rf ~", "--host"),
    ("--remote-dir", "", "--remote-dir"),
    ("--remote-dir", "/", "--remote-dir"),
    ("--remote-dir", "~", "--remote-dir"),
    ("--remote-dir", "a/../..", "--remote-dir"),
    ("--remote-dir", "$HOME", "--remote-dir"),
])
def test_remote_bench_refuses_unsafe_hosts_and_folders(case: Case, option: str, value: str, named: str) -> None:
    args = {"--host": "me@jetson", "--remote-dir": "edge-fer-bench", option: value}
    res = case.run("bench", "ckpt", "--host", args["--host"], "--remote-dir", args["--remote-dir"],
                   fork=value.startswith("-o"))
    refused(res, named)
    assert not (case.root / "pwned").exists()


# ----------------------------------------------------------------------------- 7. static batch


def test_a_static_batch_export_quantizes(case: Case) -> None:
    res = case.run("quantize", "static.onnx", "-o", "s8.onnx", "--method", "minmax", outputs=("s8.onnx", "s8.json"))
    assert res.rc == 0, res.output
    dims = onnx.load(str(case.root / "s8.onnx")).graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_value == 1


# ----------------------------------------------------------------------------- 8. errors at the boundary


def test_os_errors_at_output_paths_are_one_line(case: Case) -> None:
    (case.root / "afile").write_text("x")
    refused(case.run("export", "ckpt", "-o", "afile/m.onnx"), "afile")
    (case.root / "adir.onnx").mkdir()
    refused(case.run("export", "ckpt", "-o", "adir.onnx", fork=False), "adir.onnx")
    refused(case.run("predict", "data/angry/00.png", "-o", "afile/out", "--engine", "model.onnx", "--no-detect",
                     fork=False), "afile")
    if os.geteuid() != 0:  # root writes into read-only folders anyway
        (case.root / "ro").mkdir(mode=0o555)
        refused(case.run("export", "ckpt", "-o", "ro/m.onnx", fork=False), "ro")


@pytest.mark.parametrize(("section", "key", "value", "named"), [
    ("architecture", "attention", "transformer", "architecture.attention"),
    ("architecture", "reduction", 0, "architecture.reduction"),
    ("architecture", "reduction", 1024, "do not match the architecture in model.json"),
    ("architecture", "img_size", "224", "architecture.img_size"),
    ("architecture", "num_classes", 7, "classes listed"),
    ("architecture", "head", "mlp", "head"),
    ("architecture", "bogus", 1, "unknown fields"),
    ("preprocessing", "interpolation", "lanczos9", "preprocessing.interpolation"),
    ("preprocessing", "std", 0, "preprocessing.std"),
    ("preprocessing", "mean", float("nan"), "preprocessing.mean"),
    ("metrics", "test", {"accuracy": "high", "n": 5}, "metrics.test.accuracy"),
    ("classes", None, ["a", "a", "b", "c", "d", "e", "f", "g"], "listed twice"),
    ("classes", None, ["a\nb", "c", "d", "e", "f", "g", "h", "i"], "class name"),
])
def test_invalid_checkpoint_metadata_is_one_line(case: Case, section: str, key, value, named: str) -> None:
    def change(meta: dict) -> None:
        if key is None:
            meta[section] = value
        else:
            meta.setdefault(section, {})[key] = value

    edit_json(case.root / "ckpt" / "model.json", change)
    refused(case.run("info", "ckpt", fork=False), "ckpt/model.", named)


def test_invalid_json_and_non_utf8_are_one_line(case: Case) -> None:
    (case.root / "ckpt" / "model.json").write_bytes(b"\xff\xfe{not json")
    refused(case.run("info", "ckpt"), "ckpt/model.json")
    (case.root / "ckpt" / "model.json").write_text("[1, 2]")
    refused(case.run("info", "ckpt", fork=False), "ckpt/model.json")
    (case.root / "m.txt").write_bytes(b"# edge-fer calibration manifest\n\xff\xfe  angry/00.png\n")
    refused(case.run("quantize", "model.onnx", "--calib", "m.txt", "-o", "q.onnx", fork=False), "m.txt", "UTF-8")


def test_artifact_metadata_is_checked_against_the_graph(case: Case) -> None:
    with_metadata(case.root / "model.onnx", case.root / "seven.onnx", **{"edge_fer.classes": json.dumps(CLASSES[:7])})
    refused(case.run("quantize", "seven.onnx", "-o", "q.onnx"), "seven.onnx", "7 classes", "8 outputs")
    refused(case.run("predict", "data/angry/00.png", "--engine", "seven.onnx", "--no-detect", fork=False),
            "seven.onnx")
    pre = json.dumps({"img_size": 64, "mean": 0.5, "std": 0.0, "interpolation": "linear"})
    with_metadata(case.root / "model.onnx", case.root / "std0.onnx", **{"edge_fer.preprocessing": pre})
    refused(case.run("quantize", "std0.onnx", "-o", "q.onnx", fork=False), "std0.onnx", "preprocessing.std")
    pre = json.dumps({"img_size": 96, "mean": 0.5, "std": 0.5, "interpolation": "linear"})
    with_metadata(case.root / "model.onnx", case.root / "size.onnx", **{"edge_fer.preprocessing": pre,
                                                                          "edge_fer.img_size": "96"})
    refused(case.run("predict", "data/angry/00.png", "--engine", "size.onnx", "--no-detect", fork=False),
            "size.onnx", "input")


@pytest.mark.parametrize("args", [
    ("eval", "ckpt", "--data", "data", "--batch-size", "0"),
    ("bench", "ckpt", "--iters", "0"),
    ("bench", "ckpt", "--threads", "-2"),
    ("bench", "ckpt", "--min-agreement", "nan"),
    ("train", "--data", "data", "--lr", "nan"),
    ("train", "--data", "data", "--img-size", "0"),
    ("train", "--data", "data", "--epochs", "0"),
    ("export", "ckpt", "--img-size", "0"),
    ("quantize", "model.onnx", "-o", "q.onnx", "--size", "0"),
    ("quantize", "model.onnx", "-o", "q.onnx", "--max-drop", "inf"),
])
def test_bad_numbers_are_refused_at_parse_time(case: Case, args: tuple[str, ...]) -> None:
    option = next(a for a in reversed(args) if a.startswith("--"))
    usage_error(case.run(*args, fork=args[0] == "bench"), option)


# ----------------------------------------------------------------------------- 9. caches


def test_bench_cache_entries_are_verified_and_follow_the_metadata(case: Case) -> None:
    args = ("bench", "ckpt", "--backends", "onnxruntime", "--precisions", "fp32", "--iters", "2", "--warmup", "0",
            "--min-agreement", "0", "--cache", "cache", "--out", "bench-out")
    outputs = ("cache", "bench-out")
    assert case.run(*args, outputs=outputs, fork=False).rc == 0
    (entry,) = (case.root / "cache").glob("*/fernet-fp32.onnx")
    entry.write_bytes(entry.read_bytes()[:1000])  # truncated: rebuilt, not blamed on the user
    res = case.run(*args, outputs=outputs)
    assert res.rc == 0, res.output
    onnx.checker.check_model(onnx.load(str(entry)))
    edit_json(case.root / "ckpt" / "model.json", lambda m: m.update(classes=[*CLASSES[1:], CLASSES[0]]))
    res = case.run(*args, outputs=outputs, fork=False)  # replaced metadata: a new cache folder, not the old one
    assert res.rc == 0, res.output
    assert len(list((case.root / "cache").iterdir())) == 2
    results = json.loads((case.root / "bench-out" / "results.json").read_text())
    assert results["rows"]["onnxruntime fp32"]["top1_agreement"] == 1.0
