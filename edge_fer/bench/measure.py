"""Latency and accuracy parity of several runners against the float reference (``edge-fer bench``).

All runners live in one process and are timed *interleaved* (one call each, in
turn, repeated), so drift on a noisy machine (frequency, a neighbour's load)
hits every backend alike; medians and ratios are quoted, never single runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from edge_fer.backends.base import Runner
from edge_fer.bench.tegrastats import TegraStats, summarize
from edge_fer.compare import compare_logits
from edge_fer.train.metrics import batched_logits, compute_metrics, softmax, top2_gap


@dataclass
class Latency:
    """Per-call wall times (ms) of one runner at one batch size."""

    batch: int
    cold_ms: float
    times_ms: list[float] = field(default_factory=list)

    def summary(self) -> dict:
        t = np.asarray(self.times_ms)
        median = float(np.median(t))
        return {"batch": self.batch, "median_ms": median, "p90_ms": float(np.percentile(t, 90)),
                "p99_ms": float(np.percentile(t, 99)), "mean_ms": float(t.mean()), "std_ms": float(t.std()),
                "throughput_ips": self.batch * 1000.0 / median, "cold_ms": self.cold_ms, "iters": len(t)}


def time_interleaved(runners: dict[str, Runner], batch: np.ndarray, warmup: int, iters: int,
                     tick: Callable[[], None] | None = None, seconds: float | None = None) -> dict[str, Latency]:
    """Time every runner on ``batch``: first (cold) call, ``warmup`` untimed rounds, then timed rounds.

    Timed rounds: ``iters`` of them, or with ``seconds`` as many as fit in that
    wall time (at least one), so slow and fast machines get comparable statistics.
    Each round runs the runners in a fresh (seeded) random order: a runtime whose
    worker threads linger after a call (torch's OpenMP spin-wait) slows whichever
    runs next, and a fixed order, or a rotation of one (same successors), always
    charges that to the same row.  Measured here: the OpenVINO model that always ran
    right after torch took 13.8 ms, the same model elsewhere in the order 9.5 ms.
    """
    results = {}
    for name, run in runners.items():
        t0 = time.perf_counter()
        run(batch)
        results[name] = Latency(len(batch), (time.perf_counter() - t0) * 1000.0)
    for _ in range(warmup):
        for run in runners.values():
            run(batch)
    deadline = None if seconds is None else time.perf_counter() + seconds
    names = list(runners)
    rng = np.random.default_rng(0)
    done = 0
    while (done < iters) if deadline is None else (done == 0 or time.perf_counter() < deadline):
        for name in rng.permutation(names):
            t0 = time.perf_counter()
            runners[name](batch)
            results[name].times_ms.append((time.perf_counter() - t0) * 1000.0)
        done += 1
        if tick is not None:
            tick()
    return results


def measure_energy(runners: dict[str, Runner], batch: np.ndarray, seconds: float, stats: TegraStats) -> dict[str, dict]:
    """Each runner alone for ``seconds`` while ``stats`` samples power: energy per image per backend.

    Power cannot be split between interleaved calls, so unlike latency this runs
    one backend at a time, with a short idle gap so samples do not straddle two.
    """
    out = {}
    for name, run in runners.items():
        time.sleep(2 * stats.interval_ms / 1000.0)
        start = time.monotonic()
        images = 0
        while images == 0 or time.monotonic() - start < seconds:
            run(batch)
            images += len(batch)
        end = time.monotonic()
        time.sleep(1.5 * stats.interval_ms / 1000.0)  # the sample covering the window's end
        out[name] = summarize(stats.window(start, end + stats.interval_ms / 1000.0), end - start, images)
    return out


def parity(reference: np.ndarray, candidate: np.ndarray, labels: np.ndarray | None,
           classes: Sequence[str]) -> dict:
    """How ``candidate`` logits differ from the float ``reference`` (and from the labels, if any)."""
    cmp = compare_logits(reference, candidate)
    p, q = softmax(reference.astype(np.float64)), softmax(candidate.astype(np.float64))
    kl = float(np.mean(np.sum(p * (np.log(p + 1e-12) - np.log(q + 1e-12)), axis=1)))
    out = {**cmp.to_dict(), "kl_softmax": kl, **margins(reference, candidate)}
    if labels is not None:
        ref_m = compute_metrics(reference, labels, classes)
        cand_m = compute_metrics(candidate, labels, classes)
        out.update({
            "accuracy": cand_m.accuracy,
            "accuracy_drop_pt": 100.0 * (ref_m.accuracy - cand_m.accuracy),
            "per_class_delta_pt": {c: 100.0 * (cand_m.per_class_recall[c] - ref_m.per_class_recall[c])
                                   for c in classes},
            "confusion": cand_m.confusion.tolist(),
        })
    return out


def margins(reference: np.ndarray, candidate: np.ndarray) -> dict:
    """How close to a tie the float model was, overall and where ``candidate`` disagrees with it.

    Agreement depends on the model as much as on the quantizer: an image whose top-2
    float logits are closer than the quantization error flips on noise alone.
    """
    gap = top2_gap(reference)
    flipped = reference.argmax(1) != candidate.argmax(1)
    out = {"float_top2_gap_median": float(np.median(gap)) if len(gap) else 0.0}
    if flipped.any():
        out["flipped_top2_gap_median"] = float(np.median(gap[flipped]))
    return out


def verdict(row: dict, max_drop: float, min_agreement: float) -> tuple[bool, str]:
    """Pass/fail of one row against the gate; the reason names the failing figure."""
    reasons = []
    if row.get("nonfinite_logits"):
        reasons.append(f"{row['nonfinite_logits']} non-finite logits")
    if not row["top1_agreement"] >= min_agreement:  # written so that NaN fails
        reasons.append(f"agreement {row['top1_agreement']:.2%} < {min_agreement:.2%}")
    if "accuracy_drop_pt" in row and not row["accuracy_drop_pt"] <= max_drop:
        reasons.append(f"accuracy drop {row['accuracy_drop_pt']:.2f} pt > {max_drop:.2f} pt")
    return (not reasons), "; ".join(reasons) or "ok"


def all_logits(runners: dict[str, Runner], images: Sequence[np.ndarray], batch_size: int) -> dict[str, np.ndarray]:
    """Logits of every runner on the same images, each through its own artifact's preprocessing."""
    return {name: batched_logits(run, images, run.info.preprocessing, batch_size) for name, run in runners.items()}


def recommend(rows: dict[str, dict], reference: str = "torch fp32") -> dict:
    """Which engine to ship: the fastest row that passes the gate (at the first batch size timed).

    The float reference always passes, so there is always an answer; when it is the
    reference itself, no converted engine was both faster and within the gate.
    ``by_batch`` names the winner at every batch size, which may differ (INT8 gains more at batch 8).
    """
    passing = {name: row for name, row in rows.items() if row["passed"] and row.get("latency")}
    by_batch: dict[str, str] = {}
    for i, lat in enumerate(rows[reference]["latency"]):
        by_batch[str(lat["batch"])] = min(passing, key=lambda name: passing[name]["latency"][i]["median_ms"])
    first = rows[reference]["latency"][0]["batch"]
    name = by_batch[str(first)]
    row, lat = passing[name], passing[name]["latency"][0]
    out = {"row": name, "batch": first, "median_ms": lat["median_ms"], "speedup_vs_torch": lat["speedup_vs_torch"],
           "top1_agreement": row["top1_agreement"], "by_batch": by_batch}
    if "accuracy_drop_pt" in row:
        out["accuracy_drop_pt"] = row["accuracy_drop_pt"]
    return out
