"""Jetson power and load while a benchmark runs: ``tegrastats`` sampling and the power mode.

``tegrastats`` prints one line per interval, e.g. (Orin Nano, JetPack 6)::

    RAM 2448/7620MB (lfb 4x4MB) SWAP 0/3810MB (cached 0MB) CPU [3%@729,1%@729,off,off] EMC_FREQ 0%@2133
    GR3D_FREQ 47%@[624] cpu@47.5C soc2@45.1C gpu@46.8C tj@47.5C VDD_IN 6213mW/5120mW
    VDD_CPU_GPU_CV 1820mW/1203mW VDD_SOC 1611mW/1443mW

Older releases drop the ``mW`` unit (``VDD_IN 4963/4963``) and the Nano names its
rails ``POM_5V_*``.  Each rail reads ``current/average``; the current value is
sampled.  The board's input rail (``VDD_IN``, ``POM_5V_IN``, Thor's ``VIN``) is the total,
and the other rails are parts of it, never added to it; where a module has none (AGX Orin)
the rails are summed.  Energy per inference is that total power integrated over a window in
which one backend alone ran.

Temperatures skip ``-256C`` (a sensor the module lacks) and ``PMIC@100C``: on Nano and Xavier
the PMIC "sensor" is a fixed 100 C reading, not a measurement (jtop skips it too), and would
otherwise be every run's maximum.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field

RAIL = re.compile(r"\b([A-Z][A-Z0-9_]*) (\d+)(?:mW)?/(\d+)(?:mW)?(?=\s|$)")
TEMP = re.compile(r"\b([A-Za-z][\w]*)@(-?\d+(?:\.\d+)?)C\b")
GPU_LOAD = re.compile(r"\bGR3D_FREQ (\d+)%")
CPU_LOADS = re.compile(r"\bCPU \[([^\]]*)\]")
TOTAL_RAILS = ("VDD_IN", "POM_5V_IN", "VIN")  # the board input: Orin/Xavier, Nano/TX2, Thor
FIXED_SENSORS = ("PMIC",)  # constant readings, not temperatures
ABSENT_SENSOR = -256.0  # tegrastats prints -256C for sensors a module does not have


@dataclass
class Sample:
    """One tegrastats line: rail powers (mW), GPU/CPU load (%) and temperatures (C)."""

    rails_mw: dict[str, int]
    gpu_load_pct: float | None
    cpu_load_pct: float | None
    temps_c: dict[str, float]

    @property
    def total_mw(self) -> float | None:
        for name in TOTAL_RAILS:
            if name in self.rails_mw:
                return float(self.rails_mw[name])
        return float(sum(self.rails_mw.values())) if self.rails_mw else None


def parse_line(line: str) -> Sample:
    """Parse one tegrastats line (fields a module lacks are simply absent)."""
    rails = {name: int(now) for name, now, _avg in RAIL.findall(line) if name not in ("RAM", "SWAP", "IRAM")}
    temps = {name: float(t) for name, t in TEMP.findall(line)
             if float(t) > ABSENT_SENSOR and name.upper() not in FIXED_SENSORS}
    gpu = GPU_LOAD.search(line)
    cpu = CPU_LOADS.search(line)
    cpu_load = None
    if cpu:
        loads = [float(part.split("%")[0]) for part in cpu.group(1).split(",") if "%" in part]
        cpu_load = sum(loads) / len(loads) if loads else None
    return Sample(rails, float(gpu.group(1)) if gpu else None, cpu_load, temps)


@dataclass
class TegraStats:
    """Runs ``tegrastats --interval MS`` in the background and keeps time-stamped samples.

    Use as a context manager around the measured work, then ask :meth:`window`
    for what was sampled between two ``time.monotonic()`` stamps.
    """

    interval_ms: int = 100
    samples: list[tuple[float, Sample]] = field(default_factory=list)
    _proc: subprocess.Popen | None = None
    _thread: threading.Thread | None = None

    @staticmethod
    def available() -> bool:
        return shutil.which("tegrastats") is not None

    def __enter__(self) -> TegraStats:
        self._proc = subprocess.Popen(["tegrastats", "--interval", str(self.interval_ms)], stdout=subprocess.PIPE,
                                      stderr=subprocess.DEVNULL, text=True, bufsize=1)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        return self

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            if line.strip():
                self.samples.append((time.monotonic(), parse_line(line)))

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def window(self, start: float, end: float) -> list[Sample]:
        return [s for t, s in self.samples if start <= t <= end]


def summarize(samples: list[Sample], seconds: float, images: int) -> dict:
    """Mean power, energy per image, loads and peak temperature over one backend's window."""
    powers = [s.total_mw for s in samples if s.total_mw is not None]
    out: dict = {"samples": len(samples), "seconds": round(seconds, 3), "images": images}
    if powers:
        mean_mw = sum(powers) / len(powers)
        out.update(power_mw=round(mean_mw, 1), energy_mj_per_image=round(mean_mw * seconds / max(images, 1), 4))
    for key in ("gpu_load_pct", "cpu_load_pct"):
        values = [getattr(s, key) for s in samples if getattr(s, key) is not None]
        if values:
            out[key] = round(sum(values) / len(values), 1)
    temps = [t for s in samples for t in s.temps_c.values()]
    if temps:
        out["max_temp_c"] = max(temps)
    return out


def _run(args: list[str]) -> str:
    """stdout of a Jetson tool, or why it could not be read (these tools may need root)."""
    if shutil.which(args[0]) is None:
        return f"unavailable ({args[0]} not found)"
    try:
        proc = subprocess.run(args, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"unavailable ({e})"
    if proc.returncode != 0:
        last = (proc.stderr or proc.stdout).strip().splitlines()
        return f"unavailable ({last[-1] if last else f'exit status {proc.returncode}'})"
    return proc.stdout.strip()


def power_state() -> dict[str, str]:
    """nvpmodel mode and whether jetson_clocks pinned the GPU clock (both move every latency figure).

    ``jetson_clocks --show`` prints ``GPU MinFreq=... MaxFreq=... CurrentFreq=...``;
    jetson_clocks sets MinFreq to MaxFreq, so equal values mean "on".
    """
    mode = _run(["nvpmodel", "-q"])
    match = re.search(r"NV Power Mode:\s*(.+)", mode)
    clocks = _run(["jetson_clocks", "--show"])
    gpu = re.search(r"^GPU MinFreq=(\d+) MaxFreq=(\d+)", clocks, re.MULTILINE)
    if gpu:
        pinned = "on (GPU clock pinned at max)" if gpu.group(1) == gpu.group(2) else "off (GPU clock scales)"
    else:
        pinned = clocks if clocks.startswith("unavailable") else "unknown (no GPU line in jetson_clocks --show)"
    return {"nvpmodel": match.group(1).strip() if match else mode, "jetson_clocks": pinned}
