"""``edge-fer bench --host``: copy, run and fetch over SSH against a real OpenSSH sshd on 127.0.0.1.

The test starts its own sshd (its own host key, authorized key and port; no
other address is ever contacted).  ``make test`` installs openssh-server where
it is missing; outside CI the test skips if sshd is still absent.
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edge_fer.artifacts.errors import EdgeFerError
from edge_fer.bench.remote import Remote
from edge_fer.cli import app

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def sshd(tmp_path: Path):
    """(port, client key) of an sshd on 127.0.0.1 that accepts only the test's key."""
    if not Path(SSHD).exists() or shutil.which("ssh-keygen") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("sshd/ssh-keygen missing in CI: make test installs openssh-server (see Makefile)")
        pytest.skip("OpenSSH server not installed (make test installs openssh-server)")
    keys = tmp_path / "ssh"
    keys.mkdir(mode=0o700)
    for name in ("host_key", "client_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(keys / name)], check=True)
    shutil.copy(keys / "client_key.pub", keys / "authorized_keys")
    port = _free_port()
    config = keys / "sshd_config"
    config.write_text(f"Port {port}\nListenAddress 127.0.0.1\nHostKey {keys / 'host_key'}\n"
                      f"AuthorizedKeysFile {keys / 'authorized_keys'}\nPasswordAuthentication no\n"
                      "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nPermitRootLogin prohibit-password\n"
                      f"PidFile {keys / 'sshd.pid'}\nSubsystem sftp internal-sftp\n")
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(exist_ok=True)  # privilege separation directory sshd insists on as root
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"sshd exited: {proc.stderr.read() if proc.stderr else ''}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    yield port, keys / "client_key"
    proc.terminate()
    proc.wait(timeout=10)


def _ssh_options(key: Path) -> list[str]:
    opts = [f"IdentityFile={key}", "StrictHostKeyChecking=no", "UserKnownHostsFile=/dev/null", "LogLevel=ERROR"]
    return [arg for o in opts for arg in ("--ssh-option", o)]


def test_bench_runs_on_the_host_and_brings_results_back(sshd, tiny_checkpoint: Path, fer_mini: Path,
                                                        tmp_path: Path) -> None:
    port, key = sshd
    remote_dir = tmp_path / "remote-side"  # what the "Jetson" sees; this test's host is its own target
    edge_fer = str(Path(sys.executable).parent / "edge-fer")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, [
        "bench", str(tiny_checkpoint), "--host", f"{getpass.getuser()}@127.0.0.1:{port}", *_ssh_options(key),
        "--remote-dir", str(remote_dir), "--remote-edge-fer", edge_fer, "--device", "cpu",
        "--backends", "onnxruntime", "--precisions", "fp32", "--data", str(fer_mini / "test"),
        "--iters", "2", "--warmup", "1", "--min-agreement", "0.9", "--out", str(out)])
    assert result.exit_code == 0, result.output
    res = json.loads((out / "results.json").read_text())
    assert res["remote"]["host"].endswith("@127.0.0.1") and res["remote"]["port"] == port
    assert res["remote"]["exit_status"] == 0
    assert set(res["rows"]) == {"torch fp32", "onnxruntime fp32"} and "accuracy" in res["rows"]["onnxruntime fp32"]
    assert res["data"] == f"{remote_dir}/inputs/data"  # the labelled folder was copied and used there
    assert (remote_dir / "inputs" / "model" / "model.safetensors").is_file()
    assert f"Ran on {getpass.getuser()}@127.0.0.1 over SSH" in (out / "report.md").read_text()
    assert (out / "latency.png").stat().st_size > 0


def test_unreachable_host_and_bad_arguments_fail_in_one_line(sshd, tiny_checkpoint: Path, tmp_path: Path) -> None:
    port, key = sshd
    result = CliRunner().invoke(app, [
        "bench", str(tiny_checkpoint), "--host", f"{getpass.getuser()}@127.0.0.1:{port}", *_ssh_options(key),
        "--remote-dir", str(tmp_path / "r"), "--remote-edge-fer", "/nonexistent/edge-fer", "--out",
        str(tmp_path / "out")])
    assert result.exit_code == 1 and "--remote-edge-fer" in result.output
    assert not (tmp_path / "out").exists()
    with pytest.raises(EdgeFerError, match="user@host:port"):
        Remote.parse("jetson:ssh")
    with pytest.raises(EdgeFerError, match="KEY=VALUE"):
        Remote.parse("me@jetson", ["IdentityFile"])
