#!/usr/bin/env bash
# What `pip install 'edge-fer[jetson]'` would install on a Jetson, resolved here against PyPI without
# installing anything: Linux aarch64 with JetPack 6's Python (3.10) and JetPack 7's (3.12).  Fails if
# torch or tensorrt would come from PyPI (JetPack provides both) or cuda-python would not.
# uv resolves for the *target* platform; `pip install --dry-run --platform` would not do: pip evaluates
# environment markers (platform_machine) for the machine it runs on, whatever --platform says.
# Needs network access to PyPI and uv (pip install uv); not part of make test (tests/test_install.py
# checks the same markers offline).
#   usage: scripts/check_jetson_install.sh [UV]     (default: uv)
set -euo pipefail
cd "$(dirname "$0")/.."
UV="${1:-uv}"
# JetPack 6: Ubuntu 22.04 (glibc 2.35), Python 3.10; JetPack 7: Ubuntu 24.04 (glibc 2.39), Python 3.12
for target in 3.10:2_35 3.12:2_39; do
    python="${target%%:*}"
    pins="$("$UV" pip compile pyproject.toml --extra jetson --python-platform "aarch64-manylinux_${target##*:}" \
        --python-version "$python" --index-url https://pypi.org/simple --no-header --no-annotate --quiet)"
    names="$(echo "$pins" | sed -n 's/^\([A-Za-z0-9_.-]*\)==.*/\L\1/p')"
    echo "python $python aarch64: $(echo "$names" | wc -l) packages;" \
        "$(echo "$pins" | grep -iE '^(cuda-python|onnxruntime|openvino|nncf)==' | tr '\n' ' ')"
    if echo "$names" | grep -qE '^(torch|tensorrt.*|pycuda)$' || ! echo "$names" | grep -qx 'cuda-python'; then
        echo "error: python $python: would install $(echo "$names" | grep -E '^(torch|tensorrt.*|pycuda)$' \
            | tr '\n' ' ')from PyPI, or no cuda-python" >&2
        exit 1
    fi
done
