"""``edge-fer predict``: expressions on real photos, folders, videos and cameras, with any artifact.

Every frame goes detect -> crop (with a margin) -> one batch through
``runner(preprocess(crops, runner.info.preprocessing))`` -> softmax, so a
checkpoint, an ONNX/INT8 model, an OpenVINO IR or a TensorRT engine all see
exactly the pixels training saw.  Annotated images/videos and a
``predictions.json`` go to the output folder; images without a face are
reported, unreadable ones skipped and counted, never fatal.
"""

from __future__ import annotations

import functools
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from edge_fer.artifacts.atomic import atomic_path, check_sidecar, refuse_inputs, write_json
from edge_fer.artifacts.errors import EdgeFerError
from edge_fer.artifacts.text import count
from edge_fer.backends import Runner
from edge_fer.data.dataset import ESCAPES, IMAGE_SUFFIXES, SkipReport, inside, max_pixels, read_image
from edge_fer.data.preprocessing import preprocess
from edge_fer.predict.faces import Box, FaceDetector, crop, to_bgr
from edge_fer.train.metrics import softmax

VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv"})
JSON_NAME = "predictions.json"
JSON_FORMAT = "edge-fer-predictions/1"


@dataclass
class Face:
    box: Box
    label: str
    probabilities: dict[str, float]

    @property
    def p(self) -> float:
        return self.probabilities[self.label]


def classify(runner: Runner, image: np.ndarray, boxes: Sequence[Box], margin: float) -> list[Face]:
    """All faces of one frame in one batch through the runner; softmax probabilities per face."""
    if not boxes:
        return []
    crops = [crop(image, b, margin) for b in boxes]
    batch = preprocess(crops, runner.info.preprocessing)
    logits = np.asarray(runner(batch), dtype=np.float32)  # static batch-1 models: the runner loops itself
    probs = softmax(logits)
    classes = runner.info.classes
    faces = []
    for box, row in zip(boxes, probs, strict=True):
        k = int(row.argmax())
        faces.append(Face(tuple(int(v) for v in box), classes[k],
                          {c: round(float(p), 4) for c, p in zip(classes, row, strict=True)}))
    return faces


def annotate(image: np.ndarray, faces: Sequence[Face]) -> np.ndarray:
    """A BGR copy of ``image`` with a box and ``label p=0.93`` per face."""
    out = to_bgr(image).copy()
    height, width = out.shape[:2]
    scale = max(0.35, min(width, height) / 800)
    thick = max(1, round(scale * 2))
    for f in faces:
        x, y, w, h = f.box
        cv2.rectangle(out, (x, y), (x + w - 1, y + h - 1), (0, 220, 0), thick)
        text = f"{f.label} p={f.p:.2f}"
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
        ty = y - base - 2 if y - th - base - 4 >= 0 else min(height - base - 2, y + h + th + 2)
        cv2.rectangle(out, (x, ty - th - 2), (x + tw + 2, ty + base), (0, 0, 0), cv2.FILLED)
        cv2.putText(out, text, (x + 1, ty), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 255, 255), thick, cv2.LINE_AA)
    return out


@dataclass
class Source:
    """One thing to run on: an image (with the name it gets under --out), a video, or a camera."""

    kind: str  # image | video | camera
    path: Path | None = None
    out_name: str = ""
    camera: int | None = None

    @property
    def label(self) -> str:
        return f"camera:{self.camera}" if self.kind == "camera" else str(self.path)


def collect_sources(inputs: Sequence[Path | str], camera: int | None = None,
                    skips: SkipReport | None = None) -> list[Source]:
    """Expand inputs to sources; anything that is neither image, folder nor video is a one-line error.

    In folders, symlinks that lead out of the folder are skipped (and counted in ``skips``).
    """
    sources: list[Source] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files = []
            for p in sorted(path.rglob("*")):
                if not (p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()):
                    continue
                if inside(path, p):
                    files.append(p)
                elif skips is not None:
                    skips.add(p, ESCAPES)
            if not files:
                raise EdgeFerError(f"{path}: folder has no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
            sources += [Source("image", p, (Path(path.resolve().name) / p.relative_to(path)).as_posix())
                        for p in files]
        elif not path.exists():
            raise EdgeFerError(f"{path}: no such file or folder")
        elif path.suffix.lower() in IMAGE_SUFFIXES:
            sources.append(Source("image", path, path.name))
        elif path.suffix.lower() in VIDEO_SUFFIXES:
            sources.append(Source("video", path, f"{path.stem}.annotated.mp4"))
        else:
            raise EdgeFerError(f"{path}: not an image or video (suffix {path.suffix or 'none'!r}); give images "
                               f"({', '.join(sorted(IMAGE_SUFFIXES))}), a folder, a video "
                               f"({', '.join(sorted(VIDEO_SUFFIXES))}) or --camera N")
    if camera is not None:
        sources.append(Source("camera", None, f"camera{camera}.annotated.mp4", camera))
    if not sources:
        raise EdgeFerError("nothing to run on: give images, folders or videos, or --camera N")
    names = [s.out_name for s in sources]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise EdgeFerError(f"two inputs would both be written as {dup}; run them separately or rename one")
    return sources


def write_image(path: Path, image: np.ndarray) -> None:
    ok, data = cv2.imencode(path.suffix if path.suffix.lower() in IMAGE_SUFFIXES else ".png", image)
    if not ok:
        raise EdgeFerError(f"{path}: OpenCV cannot encode an annotated {path.suffix} image")
    with atomic_path(path) as tmp:
        tmp.write_bytes(data.tobytes())


def ms_median(values: Sequence[float]) -> float | None:
    return round(statistics.median(values) * 1000, 3) if values else None


@dataclass
class Report:
    """What ``predictions.json`` holds."""

    engine: str
    backend: str
    precision: str
    detector: str
    classes: list[str]
    results: list[dict] = field(default_factory=list)  # one per face: file, frame, box, label, probabilities
    no_face: list[dict] = field(default_factory=list)  # images (frame null) without a detected face
    videos: list[dict] = field(default_factory=list)  # per video/camera: frames, fps, stage medians
    skips: SkipReport = field(default_factory=SkipReport)
    images: int = 0

    def to_dict(self) -> dict:
        return {"format": JSON_FORMAT, "engine": self.engine, "backend": self.backend, "precision": self.precision,
                "detector": self.detector, "classes": self.classes, "images": self.images,
                "faces": len(self.results), "results": self.results, "no_face": self.no_face,
                "unreadable": {"count": len(self.skips.skipped), "files": self.skips.skipped},
                "symlinks_leaving_folder": self.skips.escaped,
                "videos": self.videos}

    def add(self, file: str, frame: int | None, faces: Sequence[Face]) -> None:
        for f in faces:
            self.results.append({"file": file, "frame": frame, "box": list(f.box), "label": f.label,
                                 "p": f.p, "probabilities": f.probabilities})


def run_image(src: Source, runner: Runner, detector: FaceDetector, report: Report, out: Path | None,
              margin: float) -> None:
    image = read_image(src.path)
    if image is None:
        report.skips.add(src.path)
        return
    report.images += 1
    faces = classify(runner, image, detector(image), margin)
    report.add(str(src.path), None, faces)
    if not faces:
        report.no_face.append({"file": str(src.path), "frame": None})
    if out is not None:
        target = out / src.out_name
        target.parent.mkdir(parents=True, exist_ok=True)
        write_image(target, annotate(image, faces))


def frames(cap: cv2.VideoCapture, decode_times: list[float]) -> Iterator[np.ndarray]:
    while True:
        t0 = time.perf_counter()
        ok, frame = cap.read()
        if not ok or frame is None:
            return
        decode_times.append(time.perf_counter() - t0)
        yield frame


def _open_video(src: Source) -> cv2.VideoCapture:
    """The capture of a video or camera; a one-line error if OpenCV cannot open it or its frames exceed the cap."""
    cap = cv2.VideoCapture(src.camera if src.kind == "camera" else str(src.path))
    if not cap.isOpened():
        raise EdgeFerError(f"{src.label}: OpenCV cannot open it as a video"
                           + (" (is the camera connected?)" if src.kind == "camera" else
                              " (unsupported codec or corrupt file)"))
    pixels = cap.get(cv2.CAP_PROP_FRAME_WIDTH) * cap.get(cv2.CAP_PROP_FRAME_HEIGHT)
    if pixels > max_pixels():
        cap.release()
        raise EdgeFerError(f"{src.label}: frames of {pixels / 1e6:.0f} MP exceed the {max_pixels() / 1e6:.0f} MP "
                           "cap; set EDGE_FER_MAX_PIXELS to allow them")
    return cap


class _AnnotatedVideo:
    """The annotated mp4 of one video under ``out`` (none without it): written to a hidden partial file,
    renamed into place only when the whole video went through, so no partial video is left behind."""

    def __init__(self, out: Path | None, name: str, fps: float) -> None:
        self.out, self.name, self.fps = out, name, fps
        self.writer: cv2.VideoWriter | None = None
        self.partial: Path | None = None
        self.final: Path | None = None

    def write(self, frame: np.ndarray, faces: Sequence[Face]) -> None:
        if self.out is None:
            return
        if self.writer is None:  # opened on the first frame, which gives the size
            self.final = self.out / self.name
            self.partial = self.final.with_name(f".{self.final.stem}.partial.mp4")
            h, w = frame.shape[:2]
            self.writer = cv2.VideoWriter(str(self.partial), cv2.VideoWriter_fourcc(*"mp4v"),
                                          self.fps if self.fps > 0 else 25.0, (w, h))
            if not self.writer.isOpened():
                raise EdgeFerError(f"{self.final}: OpenCV cannot write an mp4v video here")
        self.writer.write(annotate(frame, faces))

    def close(self, complete: bool) -> None:
        """Rename the video into place if ``complete``, else delete the partial file."""
        if self.writer is not None:
            self.writer.release()
        if self.writer is not None and complete:
            os.replace(self.partial, self.final)
        elif self.partial is not None:
            self.partial.unlink(missing_ok=True)


@dataclass
class _VideoStats:
    """Counts and per-stage times of one video, for its entry in ``predictions.json``."""

    frames: int = 0
    faces: int = 0
    no_face: int = 0
    decode: list[float] = field(default_factory=list)
    detect: list[float] = field(default_factory=list)
    classify: list[float] = field(default_factory=list)

    def record(self, label: str, source_fps: float, elapsed: float, annotated: Path | None) -> dict:
        n = self.frames
        return {
            "file": label, "frames": n, "faces": self.faces, "frames_without_face": self.no_face,
            "source_fps": round(source_fps, 3), "fps": round(n / elapsed, 2) if elapsed > 0 else None,
            "stage_ms_median": {"decode": ms_median(self.decode), "detect": ms_median(self.detect),
                                "classify": ms_median(self.classify)},
            "annotated": str(annotated) if annotated is not None and n else None,
        }


@dataclass(frozen=True)
class PredictOptions:
    """What one ``edge-fer predict`` is asked besides its sources, runner and detector."""

    engine: str = ""  # the artifact's path, which no output may overwrite
    out: Path | None = None  # annotated images/videos and predictions.json; None: nothing written
    margin: float = 0.2  # crop margin around each detected face
    max_frames: int | None = None  # per video or camera


def run_video(src: Source, runner: Runner, detector: FaceDetector, report: Report, opts: PredictOptions,
              advance: Callable[[int], None] | None = None) -> None:
    out, margin, max_frames = opts.out, opts.margin, opts.max_frames
    cap = _open_video(src)
    source_fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
    stats = _VideoStats()
    video = _AnnotatedVideo(out, src.out_name, source_fps)
    start = time.perf_counter()
    try:
        for frame in frames(cap, stats.decode):
            t0 = time.perf_counter()
            boxes = detector(frame)
            t1 = time.perf_counter()
            faces = classify(runner, frame, boxes, margin)
            t2 = time.perf_counter()
            stats.detect.append(t1 - t0)
            stats.classify.append(t2 - t1)
            report.add(src.label, stats.frames, faces)
            stats.faces += len(faces)
            stats.no_face += not faces
            video.write(frame, faces)
            stats.frames += 1
            if advance is not None:
                advance(1)
            if max_frames is not None and stats.frames >= max_frames:
                break
    except KeyboardInterrupt:  # stopping a camera with Ctrl-C still writes what was seen
        if src.kind != "camera":
            raise
    finally:
        cap.release()
        video.close(bool(stats.frames) and sys.exc_info()[0] is None)
    elapsed = time.perf_counter() - start
    if stats.frames == 0:
        raise EdgeFerError(f"{src.label}: no frame could be decoded (unsupported codec or empty video)")
    report.videos.append(stats.record(src.label, source_fps, elapsed, video.final))


def predict(sources: Sequence[Source], runner: Runner, detector: FaceDetector, opts: PredictOptions | None = None,
            progress=None, skips: SkipReport | None = None) -> Report:
    """Run every source (from :func:`collect_sources`); ``progress`` is an optional rich Progress.

    Before anything runs, no output may be one of the inputs (an image, a video, the engine),
    and an existing ``predictions.json`` must be one edge-fer wrote.
    """
    opts = opts or PredictOptions()
    engine, out, margin = opts.engine, opts.out, opts.margin
    if out is not None:
        refuse_inputs([out / JSON_NAME, *(out / s.out_name for s in sources if s.kind != "camera")],
                      [*(s.path for s in sources if s.path is not None), *([Path(engine)] if engine else [])])
        check_sidecar(out / JSON_NAME, JSON_FORMAT)
        out.mkdir(parents=True, exist_ok=True)
    report = Report(engine, runner.backend, runner.precision, detector.name, list(runner.info.classes),
                    skips=skips or SkipReport())
    images = [s for s in sources if s.kind == "image"]
    if images:
        task = progress.add_task("images", total=len(images)) if progress is not None and len(images) > 1 else None
        for src in images:
            run_image(src, runner, detector, report, out, margin)
            if task is not None:
                progress.advance(task)
    for src in (s for s in sources if s.kind != "image"):
        advance = None
        if progress is not None:
            total = None
            if src.kind == "video":
                cap = cv2.VideoCapture(str(src.path))
                total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or None
                cap.release()
            task = progress.add_task(Path(src.label).name, total=total)
            advance = functools.partial(progress.advance, task)
        run_video(src, runner, detector, report, opts, advance)
    if not report.images and not report.videos and report.skips.skipped:
        raise EdgeFerError(f"{report.skips.skipped[0]}: no readable image among the inputs (undecodable, or over "
                           f"the {max_pixels() / 1e6:.0f} MP cap that EDGE_FER_MAX_PIXELS sets)")
    if out is not None:
        write_json(out / JSON_NAME, report.to_dict())
    return report


def summary_lines(report: Report, limit: int = 20) -> list[str]:
    """Human-readable lines for the console: faces (up to ``limit``), images without faces, videos, skips."""
    stills = [r for r in report.results if r["frame"] is None]
    lines = [f"{r['file']}: {r['label']} p={r['p']:.2f} box={r['box']}" for r in stills[:limit]]
    if len(stills) > limit:
        lines.append(f"... {count(len(stills) - limit, 'more face')} in {JSON_NAME} / --json")
    for r in report.no_face[:limit]:
        lines.append(f"{r['file']}: no face found")
    for v in report.videos:
        st = v["stage_ms_median"]
        lines.append(f"{v['file']}: {count(v['frames'], 'frame')}, {count(v['faces'], 'face')}, {v['fps']} fps "
                     f"(median ms: decode {st['decode']}, detect {st['detect']}, classify {st['classify']})")
    lines.append(f"{count(report.images, 'image')}, {count(len(report.results), 'face')}, "
                 f"{count(len(report.no_face), 'image')} without a face, {report.skips.summary()}")
    return lines
