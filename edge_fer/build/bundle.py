"""A self-contained folder that builds the TensorRT engine on the Jetson (``edge-fer build --target jetson --bundle``).

Engines must be built on the device that runs them, and TensorRT is usually only there.
The bundle holds the ONNX to build (float for fp16, the checked QDQ model for int8), the
edge-fer metadata (doubling as the engine sidecar when trtexec builds), the calibration
manifest behind the INT8 scales, and ``build.sh``: ``edge-fer build`` with the same
settings when edge-fer is installed there, else the same build with ``trtexec``.

A bundle is written for one TensorRT release (``--tensorrt``, default
:data:`edge_fer.build.tensorrt.BUNDLE_TENSORRT`): weakly typed releases get ``--fp16``/``--int8``,
strongly typed ones the fp16 ONNX (or the Q/DQ one) and no precision flag (``--stronglyTyped``
on 10.12+, where weak typing still exists; TensorRT 11's trtexec has no weak mode and dropped
the flags).  ``build.sh`` compares that release with the one on the Jetson (Python bindings or
the ``libnvinfer`` package) and stops with one line if they differ in major.minor.
"""

from __future__ import annotations

import json
import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import onnx

from edge_fer.artifacts import argv
from edge_fer.artifacts.atomic import staging_dir
from edge_fer.artifacts.errors import EdgeFerError
from edge_fer.artifacts.metadata import ModelInfo
from edge_fer.build.deepstream import deepstream_names
from edge_fer.build.tensorrt import EngineSettings, Flavor, sidecar_fields

ONNX_NAME = "model.onnx"
SOURCE_ONNX_NAME = "model.float.onnx"  # strongly typed fp16 bundles: the float ONNX edge-fer converts itself
ENGINE_NAME = "model.engine"
DS = deepstream_names("model")  # the DeepStream files, named after ENGINE_NAME as edge-fer build names them


def input_shape(onnx_path: Path) -> tuple[str, list[int]]:
    """Name and dims of the model input (-1 for a dynamic batch)."""
    tensor = onnx.load(str(onnx_path), load_external_data=False).graph.input[0]
    dims = [d.dim_value if d.dim_value > 0 else -1 for d in tensor.type.tensor_type.shape.dim]
    return tensor.name, dims


def trtexec_args(onnx_file: str, engine_file: str, settings: EngineSettings, flavor: Flavor, name: str,
                 dims: list[int]) -> list[str]:
    """trtexec flags for the same engine :func:`edge_fer.build.tensorrt.build_engine` builds."""
    args = [f"--onnx={onnx_file}", f"--saveEngine={engine_file}"]
    if not flavor.strongly_typed:
        args.append(f"--{settings.precision}")
    elif flavor.version[0] < 11:
        args.append("--stronglyTyped")  # 10.12+: weak typing is still the default there
    if settings.dla_core is not None:
        args += [f"--useDLACore={settings.dla_core}"]
        if settings.precision == "int8" and not flavor.strongly_typed:
            args.append("--fp16")  # DLA has no FP32 for the float layers
        args += ["--allowGPUFallback"] if settings.gpu_fallback else []
    if settings.workspace_mb:
        args.append(f"--memPoolSize=workspace:{settings.workspace_mb}")  # MiB
    if settings.timing_cache:
        args.append(f"--timingCacheFile={Path(settings.timing_cache).name}")
    if dims[0] == -1:  # trtexec refuses shape flags for a static model
        low, opt, high = settings.profile
        chw = "x".join(str(d) for d in dims[1:])
        args += [f"--minShapes={name}:{low}x{chw}", f"--optShapes={name}:{opt}x{chw}",
                 f"--maxShapes={name}:{high}x{chw}"]
    return args


# EngineSettings fields build.sh passes to edge-fer on the Jetson, around ``-o ENGINE``; not passed: --tensorrt
# (edge-fer there builds for the installed release, which build.sh checked is the bundle's), --implicit-int8 and
# --calib-cache (refused for bundles: check_bundle_folder), and --timing-cache, passed as the bundled file's name.
BUNDLE_OPTIONS = (("precision", "opt_batch", "max_batch"), ("dla_core", "gpu_fallback", "workspace_mb"))


def edge_fer_args(settings: EngineSettings, deepstream: bool, has_source: bool) -> list[str]:
    """``edge-fer build`` arguments for the same engine, generated from the settings the CLI filled here."""
    before, after = BUNDLE_OPTIONS
    args = [SOURCE_ONNX_NAME if has_source else ONNX_NAME, "--target", "jetson", *argv.option_args(settings, before),
            "-o", ENGINE_NAME, *argv.option_args(settings, after)]
    if settings.timing_cache:
        args += ["--timing-cache", Path(settings.timing_cache).name]
    return args + (["--deepstream"] if deepstream else [])


# The TensorRT release on the Jetson: Python bindings (JetPack's python3-libnvinfer), else the libnvinfer package.
DETECT_TENSORRT = (
    'HERE="$(python3 -c \'import tensorrt; print(tensorrt.__version__)\' 2>/dev/null'
    " || dpkg-query -W -f='${Version}' libnvinfer-bin 2>/dev/null || true)\""
)


def build_script(settings: EngineSettings, flavor: Flavor, name: str, dims: list[int], has_source: bool,
                 deepstream: bool) -> str:
    def cmd(args: list[str]) -> str:
        return " ".join(shlex.quote(a) for a in args)

    lines = [
        "#!/usr/bin/env bash",
        "# Build the TensorRT engine for this bundle on the Jetson that will run it: an engine only runs on the",
        "# GPU and TensorRT version that built it.  edge-fer (with tensorrt + pycuda) if installed, else trtexec.",
        f"# Written for TensorRT {flavor.label} ({'strongly' if flavor.strongly_typed else 'weakly'} typed).",
        "set -euo pipefail",
        'cd "$(dirname "$0")"',
        "",
        DETECT_TENSORRT,
        f'if [ -n "$HERE" ] && [ "$(echo "$HERE" | cut -d. -f1-2 | sed \'s/^[0-9]*://\')" != "{flavor.label}" ]; then',
        f'    echo "error: this bundle is for TensorRT {flavor.label}, the Jetson has $HERE; write it again with'
        ' edge-fer build --bundle DIR --tensorrt MAJOR.MINOR" >&2',
        "    exit 1",
        "fi",
        "",
        "if command -v edge-fer >/dev/null 2>&1; then",
        f"    if edge-fer build {cmd(edge_fer_args(settings, deepstream, has_source))}; then",
        f'        echo "built {ENGINE_NAME} with edge-fer"',
        "        exit 0",
        "    fi",
        '    echo "edge-fer build failed; trying trtexec" >&2',
        "fi",
        "",
        'TRTEXEC="${TRTEXEC:-$(command -v trtexec || echo /usr/src/tensorrt/bin/trtexec)}"',
        'if [ ! -x "$TRTEXEC" ]; then',
        '    echo "error: neither edge-fer (with tensorrt and pycuda) nor trtexec found; install TensorRT (JetPack)'
        " or pip install 'edge-fer[jetson]'\" >&2",
        "    exit 1",
        "fi",
        f'"$TRTEXEC" {cmd(trtexec_args(ONNX_NAME, ENGINE_NAME, settings, flavor, name, dims))}',
        "# trtexec writes no sidecar: metadata.json is one (classes, preprocessing) without TensorRT/GPU facts",
        f"cp metadata.json {ENGINE_NAME}.json",
    ]
    if deepstream:
        ds_dims = [dims[0], 1, *dims[2:]]
        lines.append(f'"$TRTEXEC" {cmd(trtexec_args(DS["onnx"], DS["engine"], settings, flavor, name, ds_dims))}')
    lines.append(f'echo "built {ENGINE_NAME} with trtexec"')
    return "\n".join(lines) + "\n"


def readme(info: ModelInfo, settings: EngineSettings, flavor: Flavor, names: set[str]) -> str:
    """What the bundle is, how to build and run it, and what each file in ``names`` is."""
    low, opt, high = settings.profile
    parts = [
        "# edge-fer TensorRT bundle",
        "",
        f"Facial-expression classifier ({', '.join(info.classes)}), {info.img_size}x{info.img_size} input, "
        f"to be built as a TensorRT **{settings.precision}** engine on the Jetson itself "
        "(engines are tied to the GPU and TensorRT version that built them), with TensorRT "
        f"**{flavor.label}** ("
        + ("strongly typed: precision comes from the ONNX" if flavor.strongly_typed
           else "weakly typed: precision is a build flag") + ").",
        "",
        "## Build",
        "",
        "Copy this folder to the Jetson and run `./build.sh`. It runs `edge-fer build` with the same settings when",
        "edge-fer is installed there (`pip install 'edge-fer[jetson]'`), which also writes a full sidecar",
        "(TensorRT version, GPU, layer precisions); otherwise it runs `trtexec` and copies `metadata.json` to",
        f"`{ENGINE_NAME}.json`.",
        "",
        f"Batch profile: min {low}, opt {opt}, max {high}"
        + (f"; DLA core {settings.dla_core}" + (" with GPU fallback" if settings.gpu_fallback else "")
           if settings.dla_core is not None else "") + ".",
        "",
        "## Files",
        "",
        f"* `{ONNX_NAME}`: the model to build ("
        + ("QDQ INT8, scales from edge-fer quantize --target jetson" if settings.precision == "int8"
           else "float16 inside, float32 I/O" if SOURCE_ONNX_NAME in names else "float")
        + ")",
        "* `metadata.json`: classes, preprocessing, source hashes, build settings",
        "* `build.sh`, `README.md`",
    ]
    if SOURCE_ONNX_NAME in names:
        parts.append(f"* `{SOURCE_ONNX_NAME}`: the float model it was converted from (edge-fer converts it again)")
    if "calibration.txt" in names:
        parts.append("* `calibration.txt`: manifest (sha256 per image) of the calibration images behind the INT8 "
                     "scales")
    if "quantize.json" in names:
        parts.append("* `quantize.json`: calibration and float-vs-INT8 agreement report")
    if DS["onnx"] in names:
        parts += [
            f"* `{DS['onnx']}`, `{DS['config']}`, `{DS['labels']}`: DeepStream secondary classifier (see below)",
            "",
            "## DeepStream",
            "",
            f"`{DS['config']}` is a Gst-nvinfer config for a secondary classifier on face detections",
            f"(`operate-on-gie-id=1`). `build.sh` also builds `{DS['engine']}` from `{DS['onnx']}`: the same model",
            "with a 1-channel grey input (nvinfer's `model-color-format=2` does the grey conversion; the model",
            "replicates it to 3 channels) and a softmax output, which nvinfer's classifier parser expects.",
        ]
    parts += ["", "## Run", "", f"`edge-fer predict --engine {ENGINE_NAME} photo.jpg`", ""]
    return "\n".join(parts)


def check_bundle_folder(folder: Path, settings: EngineSettings) -> None:
    """Fail before any export or quantization if the bundle cannot be written."""
    if not folder.parent.is_dir():
        raise EdgeFerError(f"--bundle {folder}: folder {folder.parent} does not exist; create it first")
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise EdgeFerError(f"--bundle {folder}: exists and is not an empty folder; choose a new one")
    if settings.implicit_int8:
        raise EdgeFerError("--implicit-int8 calibrates inside TensorRT, which is not here; bundles build INT8 "
                           "from the QDQ ONNX (drop --implicit-int8)")


@dataclass(frozen=True)
class BundleContents:
    """What a bundle carries besides its engine settings: the ONNX to build, where it came from, and what the
    jetson build made on the way (the float model behind a converted fp16 ONNX, for strongly typed releases;
    the DeepStream files; the calibration manifest and quantize report behind an INT8 ONNX)."""

    onnx_path: Path
    source: dict = field(default_factory=dict)
    float_onnx: Path | None = None
    deepstream_files: dict[str, str | bytes] | None = None
    manifest: str | None = None
    quantize_report: dict | None = None


def write_bundle(folder: Path | str, contents: BundleContents, info: ModelInfo, settings: EngineSettings,
                 flavor: Flavor) -> list[str]:
    """Write the bundle into ``folder`` (new or empty) via a temp folder renamed at the end; returns file names."""
    folder = Path(folder)
    check_bundle_folder(folder, settings)
    onnx_path, float_onnx, deepstream_files = contents.onnx_path, contents.float_onnx, contents.deepstream_files
    name, dims = input_shape(onnx_path)
    data = onnx_path.read_bytes()
    metadata = {
        **sidecar_fields(settings, flavor, info, ONNX_NAME, data),
        "builder": "trtexec via bundle build.sh (no TensorRT/GPU facts recorded)", "tensorrt": flavor.label,
        "dla": {"core": settings.dla_core, "gpu_fallback": settings.gpu_fallback}
        if settings.dla_core is not None else None,
        "input": {"name": name, "shape": dims},
        "batch": dict(zip(("min", "opt", "max"), settings.profile, strict=True)),
        "source": contents.source,
    }
    files: dict[str, str | bytes] = {
        ONNX_NAME: data,
        "metadata.json": json.dumps(metadata, indent=2) + "\n",
        "build.sh": build_script(settings, flavor, name, dims, float_onnx is not None, deepstream_files is not None),
        **(deepstream_files or {}),
    }
    if float_onnx is not None:
        files[SOURCE_ONNX_NAME] = float_onnx.read_bytes()
    if contents.manifest is not None:
        files["calibration.txt"] = contents.manifest
    if contents.quantize_report is not None:
        # quantized in a temp folder: the report names the file as it is in the bundle
        files["quantize.json"] = json.dumps({**contents.quantize_report, "output": ONNX_NAME}, indent=2) + "\n"
    files["README.md"] = readme(info, settings, flavor, {*files, "README.md"})
    with staging_dir(folder) as tmp:
        for file, content in files.items():
            if isinstance(content, bytes):
                (tmp / file).write_bytes(content)
            else:
                (tmp / file).write_text(content)
        os.chmod(tmp / "build.sh", 0o755)
        if folder.exists():
            folder.rmdir()  # empty (checked above)
        os.replace(tmp, folder)
    return sorted(files)
