"""``edge-fer bench --host user@jetson[:port]``: run the same bench on another machine over SSH.

The float checkpoint (the torch reference every row is compared against), the
labelled ``--data`` folder and a ``--calib`` folder are copied to
``REMOTE_DIR`` with ``scp``; ``edge-fer bench`` runs there (it builds or reuses
its engines in ``REMOTE_DIR/cache`` exactly as it would locally, so a Jetson
gets TensorRT engines built on itself), and its ``--out`` folder comes back.
The target needs edge-fer installed (``--remote-edge-fer`` names the command).
Only the OpenSSH client is used, so keys, agents and ``~/.ssh/config`` work as usual.
"""

from __future__ import annotations

import json
import posixpath
import re
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from edge_fer.artifacts.atomic import write_json
from edge_fer.artifacts.errors import EdgeFerError
from edge_fer.bench.options import BenchOptions, remote_args


@dataclass(frozen=True)
class Remote:
    """Where and how to reach the target: ``user@host[:port]`` plus ``-o KEY=VALUE`` options."""

    host: str
    port: int | None = None
    options: tuple[str, ...] = ()
    directory: str = "edge-fer-bench"
    edge_fer: str = "edge-fer"

    @classmethod
    def parse(cls, spec: str, options: Sequence[str] = (), directory: str = "edge-fer-bench",
              edge_fer: str = "edge-fer") -> Remote:
        host, _, port = spec.rpartition(":") if spec.count(":") == 1 else (spec, "", "")
        if not HOST.fullmatch(host) or (port and not (port.isdigit() and 0 < int(port) < 65536)):
            raise EdgeFerError(f"--host {spec!r}: expected user@host or user@host:port (letters, digits, . _ -; "
                               "not starting with -)")
        bad = [o for o in options if "=" not in o or o.startswith("-")]
        if bad:
            raise EdgeFerError(f"--ssh-option {bad[0]!r}: expected KEY=VALUE, e.g. IdentityFile=~/.ssh/jetson")
        return cls(host, int(port) if port else None, tuple(options), check_remote_dir(directory), edge_fer)

    def _common(self, port_flag: str) -> list[str]:
        args = ["-o", "BatchMode=yes"]  # never hang on a password prompt
        for option in self.options:
            args += ["-o", option]
        if self.port:
            args += [port_flag, str(self.port)]
        return args

    def ssh(self, command: str, capture: bool = False) -> subprocess.CompletedProcess:
        return subprocess.run(["ssh", *self._common("-p"), "--", self.host, command], text=True,
                              capture_output=capture, check=False)

    def put(self, local: Path, remote: str) -> None:
        self._scp([str(local), f"{self.host}:{remote}"], f"copy {local} to {self.host}:{remote}")

    def get(self, remote: str, local: Path) -> None:
        self._scp([f"{self.host}:{remote}", str(local)], f"fetch {self.host}:{remote}")

    def _scp(self, paths: list[str], what: str) -> None:
        proc = subprocess.run(["scp", "-q", "-r", *self._common("-P"), "--", *paths], text=True, capture_output=True,
                              check=False)
        if proc.returncode != 0:
            raise EdgeFerError(f"--host {self.host}: could not {what} ({_last_line(proc)})")


HOST = re.compile(r"(?:[A-Za-z0-9_][A-Za-z0-9._-]*@)?[A-Za-z0-9_][A-Za-z0-9._-]*")
REMOTE_DIR = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_./+-]*|/[A-Za-z0-9_.][A-Za-z0-9_./+-]*")


def check_remote_dir(directory: str) -> str:
    """The remote working folder, relative to the login folder or absolute, never ``''``, ``/``, ``.`` or home.

    ``REMOTE_DIR/inputs`` and ``REMOTE_DIR/out`` are removed there before each run, so a folder
    that is not edge-fer's own (the root, the home folder) is refused, as is anything a shell
    could read differently (``$``, spaces, ``..``, a leading ``-``).  ``~/x`` means ``x``.
    """
    d = directory.removeprefix("~/").rstrip("/")
    norm = posixpath.normpath(d) if d else ""
    if not REMOTE_DIR.fullmatch(d) or norm in ("", ".", "/", "/home", "/root", "/Users") or ".." in norm.split("/"):
        raise EdgeFerError(f"--remote-dir {directory!r}: give a folder of its own there, e.g. edge-fer-bench "
                           "(not empty, /, ., the home folder, no .., $ or spaces)")
    return norm


def _last_line(proc: subprocess.CompletedProcess) -> str:
    lines = (proc.stderr or proc.stdout or "").strip().splitlines()
    return lines[-1] if lines else f"exit status {proc.returncode}"


def check_ssh_client() -> None:
    missing = [tool for tool in ("ssh", "scp") if shutil.which(tool) is None]
    if missing:
        raise EdgeFerError(f"--host needs the OpenSSH client ({', '.join(missing)} not found): install openssh-client")


def run_remote(remote: Remote, checkpoint: Path, opts: BenchOptions, log: Callable[[str], None]
               ) -> tuple[dict, int]:
    """Copy, run ``edge-fer bench`` there with ``opts``, fetch its ``--out`` into ``opts.out``; returns (results,
    remote exit status).

    The options that mean the same on both ends (device, batch, timing, gate, backends) pass unchanged
    (:func:`edge_fer.bench.options.remote_args`); the paths are added here, pointing into ``remote.directory``.
    """
    data, calib, out = opts.data, opts.calib, opts.out
    check_ssh_client()
    if calib is not None and not Path(calib).is_dir():
        raise EdgeFerError(f"--calib {calib}: with --host give a folder of images (it is copied to the target); "
                           "a manifest's paths only resolve on this machine")
    base = remote.directory.rstrip("/")
    inputs = f"{base}/inputs"
    log(f"preparing {remote.host}:{base}")
    probe = remote.ssh(f"rm -rf {shlex.quote(inputs)} {shlex.quote(base + '/out')} && "
                       f"mkdir -p {shlex.quote(inputs)} && command -v {shlex.quote(remote.edge_fer)}", capture=True)
    if probe.returncode != 0:
        raise EdgeFerError(f"--host {remote.host}: {_last_line(probe)}; check the address and key, and that "
                           f"{remote.edge_fer!r} is installed there (--remote-edge-fer PATH)")
    with tempfile.TemporaryDirectory(prefix="edge-fer-remote-") as tmp:
        model = Path(tmp) / "model"
        model.mkdir()
        for name in (checkpoint.name, checkpoint.with_suffix(".json").name):
            if (checkpoint.parent / name).is_file():
                shutil.copy2(checkpoint.parent / name, model / name)
        log(f"copying the checkpoint to {remote.host}")
        remote.put(model, f"{inputs}/model")
    args = [remote.edge_fer, "bench", f"{inputs}/model/{checkpoint.name}", *remote_args(opts),
            "--out", f"{base}/out", "--cache", f"{base}/cache"]
    if data is not None:
        log(f"copying {data} to {remote.host}")
        remote.put(data, f"{inputs}/data")
        args += ["--data", f"{inputs}/data"]
    if calib is not None:
        log(f"copying {calib} to {remote.host}")
        remote.put(Path(calib), f"{inputs}/calib")
        args += ["--calib", f"{inputs}/calib"]
    command = f"cd {shlex.quote(base)} && {shlex.join(args)}"
    log(f"running on {remote.host}: {shlex.join(args)}")
    status = remote.ssh(command).returncode  # streams its table and progress to this terminal
    with tempfile.TemporaryDirectory(prefix="edge-fer-remote-") as tmp:
        fetched = Path(tmp) / "out"
        try:
            remote.get(f"{base}/out", fetched)
        except EdgeFerError as e:
            raise EdgeFerError(f"--host {remote.host}: the bench there exited with status {status} and left no "
                               f"results ({e})") from None
        results_file = fetched / "results.json"
        if not results_file.is_file():
            raise EdgeFerError(f"--host {remote.host}: the bench exited with status {status} without results.json")
        results = json.loads(results_file.read_text())
        results["remote"] = {"host": remote.host, "port": remote.port, "directory": base, "command": shlex.join(args),
                             "exit_status": status}
        write_json(results_file, results)
        out.mkdir(parents=True, exist_ok=True)
        for item in fetched.iterdir():
            target = out / item.name
            if target.is_dir():
                shutil.rmtree(target)
            shutil.move(str(item), str(target))
    return results, status
