"""Peak memory as reports state it: the process's own, not what its parent held when it started it."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from edge_fer.platform import current_rss_mb, peak_rss_mb


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="VmHWM and the ru_maxrss quirk are Linux's")
def test_a_child_reports_its_own_peak_not_its_parents() -> None:
    ballast = np.ones(2**26)  # 512 MiB resident in this (parent) process
    assert peak_rss_mb() >= current_rss_mb() >= 500
    child = subprocess.run([sys.executable, "-c", "from edge_fer.platform import peak_rss_mb; print(peak_rss_mb())"],
                           capture_output=True, text=True, check=True)
    assert float(child.stdout) < 300  # ru_maxrss would say >= 512 here: Linux carries it through fork + exec
    del ballast
