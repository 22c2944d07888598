"""Training-time augmentation on decoded uint8 images, before :func:`preprocess`.

Small, face-preserving changes (flip, zoom/shift, rotation, brightness and contrast):
expressions live in fine detail, and FER crops are already aligned. Random erasing
(off unless asked) hides one patch, so the model cannot lean on a single region
(one eye, the mouth corner) the way an over-fitted model does.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edge_fer.data.preprocessing import to_gray


@dataclass(frozen=True)
class Augment:
    flip: float = 0.5
    max_rotate_deg: float = 10.0
    zoom: tuple[float, float] = (0.9, 1.1)
    max_shift: float = 0.08  # fraction of the image side
    brightness: float = 0.2  # +- fraction of full scale
    contrast: tuple[float, float] = (0.8, 1.2)
    erase: float = 0.0  # probability of filling one random patch with noise (Zhong et al. 2020, random erasing)
    erase_area: tuple[float, float] = (0.02, 0.2)  # patch area, fraction of the image

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        gray = to_gray(image)
        h, w = gray.shape
        if rng.random() < self.flip:
            gray = gray[:, ::-1]
        angle = rng.uniform(-self.max_rotate_deg, self.max_rotate_deg)
        scale = rng.uniform(*self.zoom)
        m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
        m[:, 2] += rng.uniform(-self.max_shift, self.max_shift, size=2) * (w, h)
        out = cv2.warpAffine(np.ascontiguousarray(gray), m, (w, h), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REFLECT_101)
        alpha = rng.uniform(*self.contrast)
        beta = rng.uniform(-self.brightness, self.brightness) * 255 + (1 - alpha) * float(out.mean())
        out = cv2.convertScaleAbs(out, alpha=alpha, beta=beta)
        if self.erase > 0 and rng.random() < self.erase:  # no draw when off: the augmentation stream stays put
            out = self._erase(out, rng)
        return out

    def _erase(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One patch of uniform noise, area in ``erase_area`` and aspect ratio 1/3..3 (log-uniform)."""
        h, w = image.shape
        area = rng.uniform(*self.erase_area) * h * w
        aspect = float(np.exp(rng.uniform(np.log(1 / 3), np.log(3))))
        ph = min(h, max(1, round(np.sqrt(area * aspect))))
        pw = min(w, max(1, round(np.sqrt(area / aspect))))
        y, x = int(rng.integers(0, h - ph + 1)), int(rng.integers(0, w - pw + 1))
        image = image.copy()
        image[y:y + ph, x:x + pw] = rng.integers(0, 256, size=(ph, pw), dtype=np.uint8)
        return image


def class_weights(labels: np.ndarray, num_classes: int, mode: str) -> np.ndarray:
    """Per-class loss weights, mean 1 over the samples.

    ``full`` is sklearn's "balanced" (the seed's choice), ``sqrt`` its square root
    (helps rare classes without giving up the overall accuracy FER+'s skewed test
    set rewards), ``none`` all ones. Classes with no samples get weight 0.
    """
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    present = counts > 0
    w = np.zeros(num_classes)
    if mode == "none":
        w[present] = 1.0
    elif mode in ("full", "sqrt"):
        w[present] = len(labels) / (present.sum() * counts[present])
        if mode == "sqrt":
            w = np.sqrt(w)
    else:
        raise ValueError(f"unknown balance mode {mode!r}: use none, sqrt or full")
    w *= len(labels) / float((w[labels]).sum())
    return w.astype(np.float32)
