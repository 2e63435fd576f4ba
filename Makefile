# opt-audit: `make demo` and `make test` each set up .venv from scratch when it is missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Offline by default: runs never reach a model hub unless the user opts in.
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: demo test install browser clean bench bench-gate
# Debian's chromium for the browser tests (report XSS check); Playwright drives it through
# executable_path and never downloads a browser. Without it those tests skip with a reason.
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# torch first and pinned: 2.13.0 resolves to the local CPU wheel here; a bare range would pull
# the newest CUDA build (several GB).
$(STAMP): $(BIN)/python setup.cfg pyproject.toml
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/opt-audit run --model tiny-opt --suite quick --out runs --report

browser:
	@test -x $(CHROMIUM) || { command -v apt-get >/dev/null && \
	  { $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null || \
	    { $(SUDO) apt-get update -q >/dev/null && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; }; }; } || \
	  echo "warning: could not install chromium; browser tests will be skipped"

test: $(STAMP) browser
	$(BIN)/python -m pytest

# The CPU benchmarks: each prints its ratio against a baseline measured in the same run and writes
# bench/results/<name>.json. likelihood_vs_lmeval installs lm-eval 0.4.13 into bench/.lmeval-venv once.
bench: $(STAMP)
	$(BIN)/python bench/scorers.py
	$(BIN)/python bench/likelihood_vs_lmeval.py
	$(BIN)/python bench/generation.py

# The gate's false-alarm rate: one model under 21 seeds, every pair gated (about 15 minutes on 2 cores).
bench-gate: $(STAMP)
	$(BIN)/python bench/gate_noise.py

clean:
	rm -rf $(VENV) runs .pytest_cache
