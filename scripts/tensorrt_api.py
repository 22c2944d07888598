"""Record the real Python API of each supported TensorRT version into tests/fakes/tensorrt_api/*.json.

TensorRT cannot run on the development machine, so the fake in tests/fakes/fake_tensorrt.py
is generated from, and checked against, what NVIDIA's bindings really expose.  The bindings
wheels are on PyPI (``tensorrt-bindings``, ``tensorrt-cu12-bindings``); the libraries they
link (libnvinfer, libnvonnxparser, libnvinfer_plugin) are not.  The compiled ``tensorrt.so``
only *calls* a handful of C entry points from them (``createInferBuilder_INTERNAL`` ...), none
at import time, so this script links it against stub libraries that define those symbols and
imports the real module: the recorded names, enum members and pybind11 signatures are the
bindings' own, read by introspection, not guessed from ``strings``.  Nothing is executed
beyond the module's import (calling into a stub would crash, and nothing here does).

Needs gcc and nm (binutils) and a CPython matching a published wheel (the wheels are cp3xx).
Run once per TensorRT release edge-fer supports; commit the JSON files:

    python scripts/tensorrt_api.py            # all of SUPPORTED
    python scripts/tensorrt_api.py 10.3.0     # one of them
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

# TensorRT release -> the PyPI bindings wheel (the JetPack that ships it, for the reader)
SUPPORTED = {
    "8.6.1": "tensorrt-bindings==8.6.1",  # JetPack 5.1.x ships 8.5.2; 8.6 is the oldest bindings wheel on PyPI
    "10.3.0": "tensorrt-cu12-bindings==10.3.0",  # JetPack 6.1 / 6.2
    "11.4.0.106": "tensorrt-cu12-bindings==11.4.0.106",  # JetPack 7 generation (strongly typed only)
}
OUT = Path(__file__).resolve().parent.parent / "tests" / "fakes" / "tensorrt_api"

# Runs inside the stub-linked interpreter: prints the module surface as JSON.
DUMP = r"""
import enum, inspect, json, sys
import tensorrt as trt

module, classes, enums = {}, {}, {}

def signature(obj):
    doc = (getattr(obj, "__doc__", None) or "").strip().splitlines()
    return doc[0] if doc else ""

def members(cls):
    out = {}
    for name in sorted(dir(cls)):
        if name.startswith("__") or name == "_pybind11_conduit_v1_":
            continue
        raw = inspect.getattr_static(cls, name, None)
        if isinstance(raw, property):
            out[name] = "property" + (" (read-only)" if raw.fset is None else "")
        elif isinstance(raw, type) and hasattr(raw, "__members__"):  # a nested enum (Logger.Severity)
            enums[f"{cls.__name__}.{name}"] = {m: int(v) for m, v in sorted(raw.__members__.items())}
            out[name] = "enum"
        elif isinstance(raw, type):
            out[name] = "class"
        elif callable(raw) and not isinstance(getattr(cls, name), cls):
            out[name] = signature(raw) or "method"
        else:
            out[name] = "value"
    return out

for name in sorted(dir(trt)):
    if name.startswith("__"):
        continue
    obj = getattr(trt, name)
    if isinstance(obj, type) and hasattr(obj, "__members__"):  # pybind11 enum
        enums[name] = {member: int(value) for member, value in sorted(obj.__members__.items())}
        module[name] = "enum"
    elif isinstance(obj, type):
        classes[name] = members(obj)
        module[name] = "class"
    elif callable(obj):
        module[name] = signature(obj) or "function"
    elif isinstance(obj, (str, int, float)):
        module[name] = type(obj).__name__
json.dump({"version": trt.__version__, "module": module, "classes": classes, "enums": enums}, sys.stdout)
"""


def run(args: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(args, check=True, capture_output=True, text=True, **kw)


def stub_libraries(so: Path, folder: Path) -> None:
    """One stub .so per NVIDIA library ``so`` needs, each defining every symbol it imports (returning 0)."""
    undefined = run(["nm", "-D", "--undefined-only", str(so)]).stdout.split("\n")
    symbols = sorted({parts[1] for parts in (line.split() for line in undefined)
                      if len(parts) == 2 and parts[0] == "U" and "@" not in parts[1]
                      and not parts[1].startswith(("Py", "_Py", "dl", "pthread"))})
    source = folder / "stub.c"
    source.write_text("".join(f"void *{s}(void) {{ return 0; }}\n" for s in symbols))
    needed = [line.split("[")[1].rstrip("]") for line in run(["readelf", "-d", str(so)]).stdout.splitlines()
              if "(NEEDED)" in line and "libnv" in line]
    for lib in needed:
        run(["gcc", "-shared", "-fPIC", f"-Wl,-soname,{lib}", "-o", str(folder / lib), str(source)])


def record(version: str, requirement: str, work: Path) -> dict:
    """Download the bindings wheel for ``version``, import it over stub libraries, return its API surface."""
    wheels = work / "wheels"
    run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", requirement, "-d", str(wheels)])
    wheel = next(wheels.glob(f"*{version}*.whl"))
    unpacked = work / "unpacked"
    with zipfile.ZipFile(wheel) as z:
        z.extractall(unpacked)
    shutil.move(unpacked / "tensorrt_bindings", unpacked / "tensorrt")  # what the meta-package installs it as
    so = next((unpacked / "tensorrt").glob("tensorrt*.so"))
    stubs = work / "stubs"
    stubs.mkdir()
    stub_libraries(so, stubs)
    env = {**os.environ, "LD_LIBRARY_PATH": str(stubs), "PYTHONPATH": str(unpacked)}
    surface = json.loads(run([sys.executable, "-c", DUMP], env=env, cwd=work).stdout)
    if surface["version"] != version:
        raise SystemExit(f"{wheel.name}: reports TensorRT {surface['version']}, expected {version}")
    return {"source": {"wheel": wheel.name, "sha256": hashlib.sha256(wheel.read_bytes()).hexdigest(),
                       "how": "scripts/tensorrt_api.py: real bindings imported over stub libnvinfer/onnxparser"},
            **surface}


def main(versions: list[str]) -> None:
    unknown = [v for v in versions if v not in SUPPORTED]
    if unknown:
        raise SystemExit(f"unknown TensorRT version(s) {unknown}: add them to SUPPORTED ({', '.join(SUPPORTED)})")
    OUT.mkdir(parents=True, exist_ok=True)
    for version in versions or list(SUPPORTED):
        with tempfile.TemporaryDirectory(prefix="trt-api-") as tmp:
            surface = record(version, SUPPORTED[version], Path(tmp))
        path = OUT / f"tensorrt-{version}.json"
        tmp_path = path.with_suffix(".json.tmp")
        tmp_path.write_text(json.dumps(surface, indent=1, sort_keys=True) + "\n")
        os.replace(tmp_path, path)
        print(f"{path.name}: {len(surface['classes'])} classes, {len(surface['enums'])} enums "
              f"({surface['source']['wheel']})")


if __name__ == "__main__":
    main(sys.argv[1:])
