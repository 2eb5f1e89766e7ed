# Two commands do all the set-up on a fresh machine (Python 3.10+):
#   make demo   -> creates .venv, installs everything, runs the main job on a built-in scene
#   make test   -> same set-up, then runs the test suite
# torch is pinned first to the CPU wheel (a plain `pip install torch` pulls a multi-GB CUDA build);
# the package itself only asks for torch>=2.1.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
STAMP  := $(VENV)/.installed
TORCH  ?= torch==2.13.0
PYTEST_ARGS ?=

.PHONY: setup demo test compare bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet "$(TORCH)"
	$(VENV)/bin/python -m pip install --quiet -e '.[dev,examples]'
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/centertargets demo

test: $(STAMP)
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

compare: $(STAMP)
	$(VENV)/bin/centertargets compare ../shared/reference

bench: $(STAMP)
	$(VENV)/bin/python benchmarks/bench_encode.py
	$(VENV)/bin/python benchmarks/bench_loss.py
	$(VENV)/bin/python benchmarks/bench_dataset.py
	$(VENV)/bin/python benchmarks/bench_memory.py
	$(VENV)/bin/python benchmarks/bench_tasks.py
	$(VENV)/bin/python benchmarks/bench_tracking.py
	$(VENV)/bin/python benchmarks/bench_loader.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
