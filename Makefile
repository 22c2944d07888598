# Quickstart targets: each creates .venv on first use and installs what it needs.
# torch is pinned and installed first (the CPU build on this machine's disk);
# an unpinned torch would pull a multi-GB CUDA build.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.edge-fer-installed

.PHONY: demo test test-tools lint clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev,demo]'
	touch $(STAMP)

demo: $(STAMP)
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH bash scripts/demo.sh

test: $(STAMP) test-tools
	$(PY) -m pytest -q

# The bench --host test starts a real OpenSSH sshd on 127.0.0.1; install it where missing (root + apt only).
test-tools:
	@test -x /usr/sbin/sshd || command -v sshd >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing openssh-server (the bench --host test runs a local sshd)"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get install -y -q --no-install-recommends openssh-server >/dev/null 2>&1 || \
	    { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q --no-install-recommends openssh-server >/dev/null; }; \
	  else echo "note: no sshd and no way to install it here: the SSH test skips (fails under CI=true)"; fi; }

lint: $(STAMP)
	$(VENV)/bin/ruff check edge_fer tests scripts benchmarks

clean:
	rm -rf demo-out .pytest_cache
