"""Photo and video inputs for trying ``edge-fer predict`` without data of your own.

    python scripts/sample_inputs.py OUT_DIR      # writes OUT_DIR/astronaut.png and OUT_DIR/astronaut.mp4

The photo is scikit-image's astronaut (NASA, public domain, installed with scikit-image,
nothing downloaded); the video is made from it: a slow 2-second zoom towards the face
(mp4v, 10 fps), so a face is found in every frame. Both are generated, never committed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

FPS = 10
SECONDS = 2


def astronaut_bgr() -> np.ndarray:
    from skimage import data

    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)


def zoom_frames(image: np.ndarray, n: int, size: tuple[int, int] = (320, 320)) -> list[np.ndarray]:
    """``n`` frames zooming from the whole image to 60% of it, centred between the image and the face."""
    h, w = image.shape[:2]
    cx, cy = 0.45 * w, 0.35 * h  # the astronaut's face is upper-middle
    frames = []
    for i in range(n):
        scale = 1.0 - 0.4 * i / max(n - 1, 1)
        half_w, half_h = 0.5 * w * scale, 0.5 * h * scale
        x0 = int(np.clip(cx - half_w, 0, w - 2 * half_w))
        y0 = int(np.clip(cy - half_h, 0, h - 2 * half_h))
        crop = image[y0:y0 + int(2 * half_h), x0:x0 + int(2 * half_w)]
        frames.append(cv2.resize(crop, size, interpolation=cv2.INTER_AREA))
    return frames


def write_video(path: Path, frames: list[np.ndarray]) -> None:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (w, h))
    if not writer.isOpened():
        raise SystemExit(f"{path}: OpenCV cannot write an mp4v video here")
    for frame in frames:
        writer.write(frame)
    writer.release()


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    image = astronaut_bgr()
    if not cv2.imwrite(str(out / "astronaut.png"), image):
        raise SystemExit(f"{out / 'astronaut.png'}: could not write it")
    write_video(out / "astronaut.mp4", zoom_frames(image, FPS * SECONDS))
    print(f"wrote {out / 'astronaut.png'} and {out / 'astronaut.mp4'} ({SECONDS} s, {FPS} fps)")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python scripts/sample_inputs.py OUT_DIR")
    main(Path(sys.argv[1]))
