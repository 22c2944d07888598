"""The embedded default face set: the 100 real face crops of scikit-image's ``lfw_subset``.

Used when no data is given on a fresh machine (calibration, export verification,
float-vs-INT8 agreement). They are unlabelled LFW faces, 25x25 grayscale: good
enough to exercise numerics, not a substitute for deployment images.
"""

from __future__ import annotations

import numpy as np

from edge_fer.artifacts.errors import EdgeFerError

EMBEDDED_NAME = "skimage.data.lfw_subset (100 LFW face crops)"


def embedded_faces() -> list[np.ndarray]:
    """100 uint8 grayscale face crops (the first half of lfw_subset; the second half are non-faces)."""
    try:
        from skimage import data
    except ImportError as e:
        raise EdgeFerError("no face images given and scikit-image is not installed: pass --calib/--data DIR, "
                           "or pip install 'edge-fer[demo]'") from e
    faces = data.lfw_subset()[:100]
    return [np.clip(f * 255.0 + 0.5, 0, 255).astype(np.uint8) for f in faces]
