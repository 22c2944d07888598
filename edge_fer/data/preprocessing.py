"""The one preprocessing function.

Training, evaluation, calibration and every inference backend call
:func:`preprocess`; nothing else turns pixels into model input.  Its parameters
(:class:`Preprocessing`) travel inside every checkpoint and exported artifact,
so a model can never be fed differently from how it was trained.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import cv2
import numpy as np

_INTERPOLATION = {"linear": cv2.INTER_LINEAR, "area": cv2.INTER_AREA, "cubic": cv2.INTER_CUBIC}
INTERPOLATIONS = tuple(_INTERPOLATION)


@dataclass(frozen=True)
class Preprocessing:
    """How pixels become model input: ``((gray / 255) - mean) / std``, 3 channels, NCHW.

    FER images are grayscale, so colour photos are converted to grayscale too and
    the single channel is replicated to the 3 input channels the seed's table has.
    INTER_LINEAR resizing matches the seed (cv2.resize default).
    """

    img_size: int = 224
    mean: float = 0.5
    std: float = 0.5
    interpolation: str = "linear"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Preprocessing:
        return cls(**data)

    def with_size(self, img_size: int) -> Preprocessing:
        return Preprocessing(img_size, self.mean, self.std, self.interpolation)

    @property
    def scale_offset(self) -> tuple[float, float]:
        """``(scale, offset)`` with ``input = scale * (pixel - offset)``: the DeepStream/TensorRT form."""
        return 1.0 / (255.0 * self.std), 255.0 * self.mean


def to_gray(image: np.ndarray) -> np.ndarray:
    """A uint8 HxW grayscale view of a decoded image (gray, BGR or BGRA)."""
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] == 1:
        return image[:, :, 0]
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)
    raise ValueError(f"unsupported image shape {image.shape}")


def preprocess(images: Sequence[np.ndarray], spec: Preprocessing) -> np.ndarray:
    """Turn decoded uint8 images (any size, gray or BGR) into an NCHW float32 batch."""
    size = spec.img_size
    out = np.empty((len(images), 3, size, size), dtype=np.float32)
    interp = _INTERPOLATION[spec.interpolation]
    for i, image in enumerate(images):
        gray = to_gray(image)
        if gray.shape != (size, size):
            gray = cv2.resize(gray, (size, size), interpolation=interp)
        out[i, :] = (gray.astype(np.float32) * (1.0 / 255.0) - spec.mean) / spec.std
    return out
