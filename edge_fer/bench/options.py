"""What one ``edge-fer bench`` is asked to do: the device's rows and the options, and the
argument list that asks a remote edge-fer for the same."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from edge_fer.artifacts import argv
from edge_fer.artifacts.errors import EdgeFerError

# Which (backend, precision) rows each device benchmarks; torch fp32 is always the baseline
# (on CUDA where there is one: the Jetson's float reference).
DEVICE_ROWS = {
    "cpu": [("onnxruntime", "fp32"), ("onnxruntime", "int8"), ("onnxruntime", "int8-naive")],
    "intel": [("openvino", "fp32"), ("openvino", "bf16"), ("openvino", "int8"), ("openvino", "default"),
              ("onnxruntime", "fp32")],
    "jetson": [("tensorrt", "fp16"), ("tensorrt", "int8")],
}

# Rows shown for comparison, not as engines edge-fer makes: ORT's quantize_static with its defaults and
# OpenVINO left to pick its own precision. Each gets its verdict, but none decides bench's exit status:
# a stock recipe missing the gate says nothing about edge-fer's INT8.
BASELINES = ("onnxruntime int8-naive", "openvino default")
GATED = "gated"  # the role of a row whose fail fails the bench


def row_role(name: str, row: dict) -> str:
    """``gated``, ``baseline`` (:data:`BASELINES`) or the ``role`` the bench gave the row (``compared``: its own PTQ
    beside an ``--int8`` file, :mod:`edge_fer.bench.user_int8`); every role but ``gated`` is shown, not gated."""
    return row.get("role") or ("baseline" if name in BASELINES else GATED)


def gate_failures(rows: dict[str, dict]) -> dict[str, dict]:
    """The rows that fail the bench's gate: every failing row whose :func:`row_role` is ``gated``."""
    return {name: row for name, row in rows.items() if not row["passed"] and row_role(name, row) == GATED}


def gate_passed(rows: dict[str, dict]) -> bool:
    return not gate_failures(rows)


def select_rows(device: str, backends: tuple[str, ...] = (), precisions: tuple[str, ...] = ()
                ) -> list[tuple[str, str]]:
    """The device's rows, narrowed by ``--backends``/``--precisions`` (``int8`` includes the naive baseline)."""
    if device not in DEVICE_ROWS:
        raise EdgeFerError(f"--device {device!r}: use one of {', '.join(DEVICE_ROWS)}")
    rows = DEVICE_ROWS[device]
    valid_backends = sorted({b for b, _ in rows})
    valid_precisions = sorted({p.split("-")[0] for _, p in rows})
    for given, valid, flag in ((backends, valid_backends, "--backends"),
                               (precisions, valid_precisions, "--precisions")):
        unknown = [g for g in given if g not in valid and g not in ("torch", "fp32")]
        if unknown:
            raise EdgeFerError(f"{flag} {','.join(unknown)}: --device {device} benchmarks {', '.join(valid)} "
                               "(torch fp32 always runs as the baseline)")
    return [(b, p) for b, p in rows if (not backends or b in backends) and
            (not precisions or p.split("-")[0] in precisions)]


@dataclass
class BenchOptions:
    """Everything ``edge-fer bench`` was asked, filled by the CLI; :func:`remote_args` passes it on to ``--host``."""

    device: str = "cpu"
    data: Path | None = None
    batches: tuple[int, ...] = field(default=(1,), metadata={"flag": "--batch"})
    warmup: int = 20
    iters: int = 200
    threads: int | None = None
    max_drop: float = 1.0
    min_agreement: float = 0.99
    cache: Path = Path(".edge-fer-cache")
    out: Path = Path("bench-out")
    calib: str | None = None  # folder or manifest for INT8 calibration; None: the embedded faces
    backends: tuple[str, ...] = ()  # empty: every backend of the device
    precisions: tuple[str, ...] = ()
    seconds: float | None = None  # timed rounds by wall time instead of --iters
    energy_seconds: float = 3.0  # jetson with tegrastats: per backend and batch size
    wide: bool = False  # terminal table with every column (report.md and results.json always have them)
    int8: tuple[Path, ...] = ()  # the user's own INT8 artifacts, benched beside PTQ (edge_fer.bench.user_int8)


# Options a remote bench gets unchanged, in its command line's order; the rest stay here: paths are the
# remote side's business (run_remote copies data and calib and names its own), the table is printed here.
REMOTE_OPTIONS = ("device", "batches", "warmup", "max_drop", "min_agreement", "energy_seconds", "seconds", "iters",
                  "threads", "backends", "precisions")
LOCAL_OPTIONS = ("data", "cache", "out", "calib", "wide", "int8")


def parse_batches(text: str) -> tuple[int, ...]:
    """``--batch 1,8`` -> ``(1, 8)``."""
    try:
        return tuple(int(b) for b in text.split(","))
    except ValueError:
        raise EdgeFerError(f"--batch {text!r}: expected comma-separated integers, e.g. 1,8") from None


def remote_args(opts: BenchOptions) -> list[str]:
    """The options a remote ``edge-fer bench`` gets unchanged (--seconds replaces --iters when given)."""
    args = argv.option_args(opts, REMOTE_OPTIONS)
    return args if opts.seconds is None else _without(args, argv.flag(opts, "iters"))


def _without(args: list[str], name: str) -> list[str]:
    i = args.index(name)
    return args[:i] + args[i + 2:]
