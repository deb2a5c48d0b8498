# `make run` and `make test` each set up their own virtual environment (.venv) first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.glimpse-installed

.PHONY: setup run test lint bench clean

$(STAMP): pyproject.toml
	@$(PY) -c 'import sys; sys.exit(sys.version_info < (3, 10) and "Glimpse needs Python 3.10 or newer")'
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

run: setup
	$(BIN)/glimpse $(ARGS)

lint: setup
	$(BIN)/lint-imports

test: lint
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest $(PYTEST_ARGS)

bench: setup
	$(BIN)/python benchmarks/encoders.py
	$(BIN)/python benchmarks/index_throughput.py
	$(BIN)/python benchmarks/query_latency.py
	$(BIN)/python benchmarks/rescan.py
	$(BIN)/python benchmarks/startup.py
	$(BIN)/python benchmarks/gui_responsiveness.py
	$(BIN)/python benchmarks/browse_scroll.py

clean:
	rm -rf $(VENV) build *.egg-info
