"""Logit comparison of two backends on the same images (export verification, quantize
and build checks, bench parity)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Comparison:
    """How far two backends' logits are apart on the same images."""

    n: int
    max_abs: float
    mean_abs: float
    top1_agreement: float
    nonfinite: int = 0  # logits that are NaN or inf in either output: a comparison with them never passes

    def to_dict(self) -> dict:
        return {"n": self.n, "max_abs_logit_diff": self.max_abs, "mean_abs_logit_diff": self.mean_abs,
                "top1_agreement": self.top1_agreement, "nonfinite_logits": self.nonfinite}

    def within(self, tolerance: float) -> bool:
        """Every logit finite, none further than ``tolerance``, same top-1 everywhere (NaN never passes)."""
        return self.nonfinite == 0 and self.max_abs <= tolerance and self.top1_agreement >= 1.0

    def __str__(self) -> str:
        bad = f", {self.nonfinite} non-finite logits" if self.nonfinite else ""
        return (f"{self.n} faces: max |dlogit| {self.max_abs:.2e}, mean {self.mean_abs:.2e}, "
                f"top-1 agreement {self.top1_agreement:.2%}{bad}")


def compare_logits(reference: np.ndarray, other: np.ndarray) -> Comparison:
    """Distances between two logit arrays; a non-finite logit makes max |dlogit| inf and counts as a disagreement."""
    ref, oth = reference.astype(np.float64), other.astype(np.float64)
    finite = np.isfinite(ref) & np.isfinite(oth)
    diff = np.where(finite, np.abs(ref - oth), np.inf)
    agree = float(((ref.argmax(1) == oth.argmax(1)) & finite.all(axis=1)).mean())
    return Comparison(len(reference), float(diff.max()), float(diff.mean()), agree, int((~finite).sum()))
