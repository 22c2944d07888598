"""Face detection for ``edge-fer predict``: find faces in a photo or video frame, crop them with a margin.

The default detector is OpenCV's Haar cascade (``cv2.CascadeClassifier`` with
the ``haarcascade_frontalface_default.xml`` shipped in ``cv2.data``): JetPack
ships OpenCV 4.x, which has it built in, and the cascade file comes with the
``opencv-python-headless`` wheel, so nothing is downloaded and it runs the same
on a laptop and on a Jetson.  OpenCV 5 drops the cascades, hence the ``<5`` pin.
It is frontal-only and misses strongly turned or small faces (below
``min_face`` pixels).  For better recall pass a YuNet ONNX model
(``--yunet face_detection_yunet_2023mar.onnx``), run through
``cv2.FaceDetectorYN`` (OpenCV >= 4.5.4), also without extra packages.

Images that are already face crops (FER's 48x48 pictures: longest side at most
``small_side`` pixels) or ``detect=False`` skip detection: the whole image is
the face.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge_fer.artifacts.errors import EdgeFerError
from edge_fer.data.preprocessing import to_gray

HAAR_CASCADE = "haarcascade_frontalface_default.xml"

Box = tuple[int, int, int, int]  # x, y, w, h in pixels


def expand_box(box: Box, margin: float, width: int, height: int) -> Box:
    """``box`` grown by ``margin`` of its size on every side, clipped to the image."""
    x, y, w, h = box
    dx, dy = round(w * margin), round(h * margin)
    x0, y0 = max(0, x - dx), max(0, y - dy)
    x1, y1 = min(width, x + w + dx), min(height, y + h + dy)
    return x0, y0, x1 - x0, y1 - y0


def crop(image: np.ndarray, box: Box, margin: float = 0.2) -> np.ndarray:
    """The face in ``box`` with ``margin`` around it (clipped to the image): what the classifier sees."""
    x, y, w, h = expand_box(box, margin, image.shape[1], image.shape[0])
    return image[y:y + h, x:x + w]


def to_bgr(image: np.ndarray) -> np.ndarray:
    """A 3-channel BGR view of a gray, BGR or BGRA image (YuNet and drawing need colour)."""
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        return cv2.cvtColor(image.reshape(image.shape[:2]), cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image


@dataclass
class FaceDetector:
    """``detector(image) -> [(x, y, w, h), ...]`` in reading order (left to right, top to bottom)."""

    min_face: int = 40
    detect: bool = True
    yunet: Path | str | None = None
    small_side: int = 96
    score_threshold: float = 0.7

    def __post_init__(self) -> None:
        if self.min_face < 1:
            raise EdgeFerError(f"--min-face {self.min_face}: give a face size in pixels (e.g. 40)")
        self._cascade = None
        self._yunet = None
        if not self.detect:
            return
        if self.yunet is not None:
            path = Path(self.yunet)
            if not path.is_file():
                raise EdgeFerError(f"{path}: YuNet model not found; pass the face_detection_yunet_*.onnx file "
                                   "from the OpenCV model zoo, or drop --yunet to use the Haar cascade")
            try:
                self._yunet = cv2.FaceDetectorYN.create(str(path), "", (320, 320), self.score_threshold, 0.3, 5000)
            except cv2.error as e:
                raise EdgeFerError(f"{path}: OpenCV cannot load it as a YuNet face detector "
                                   f"({str(e).strip().splitlines()[-1]})") from e
        else:
            cascade_file = Path(cv2.data.haarcascades) / HAAR_CASCADE
            cascade = cv2.CascadeClassifier(str(cascade_file))
            if cascade.empty():
                raise EdgeFerError(f"{cascade_file}: OpenCV's Haar cascade is missing; reinstall "
                                   "opencv-python-headless<5 or pass --yunet MODEL.onnx")
            self._cascade = cascade

    @property
    def name(self) -> str:
        if not self.detect:
            return "none (whole image)"
        return f"yunet ({Path(self.yunet).name})" if self._yunet is not None else "haar (frontalface_default)"

    def whole_image(self, image: np.ndarray) -> bool:
        """True when the image itself is the face: detection off, or a small crop like FER's 48x48."""
        return not self.detect or max(image.shape[:2]) <= self.small_side

    def __call__(self, image: np.ndarray) -> list[Box]:
        height, width = image.shape[:2]
        if self.whole_image(image):
            return [(0, 0, width, height)]
        if self._yunet is not None:
            self._yunet.setInputSize((width, height))
            _, found = self._yunet.detect(to_bgr(image))
            rows = [] if found is None else found[:, :4]
        else:
            gray = cv2.equalizeHist(to_gray(image))
            rows = self._cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5,
                                                  minSize=(self.min_face, self.min_face))
        boxes = []
        for x, y, w, h in (map(float, row) for row in rows):
            x0, y0 = max(0, round(x)), max(0, round(y))
            x1, y1 = min(width, round(x + w)), min(height, round(y + h))
            if min(x1 - x0, y1 - y0) >= self.min_face:
                boxes.append((x0, y0, x1 - x0, y1 - y0))
        return sorted(boxes, key=lambda b: (b[1] // max(1, b[3]), b[0]))
