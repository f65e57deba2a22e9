# Two commands for a fresh machine:  `make run` (set up and start the gateway)  and  `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.mamori-installed
PYTEST_ARGS ?=

.PHONY: setup run test lint typecheck bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24,<27"
	# torch first: on CPU machines pip takes the local CPU build; the same pin gives CUDA builds on GPU machines
	$(BIN)/python -m pip install --quiet -c constraints.txt torch==2.13.0
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

run: setup
	$(BIN)/mamori serve

lint: setup
	$(BIN)/ruff check .

typecheck: setup
	$(BIN)/mypy

test: setup lint typecheck
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(BIN)/python -m pytest -p no:cacheprovider $(PYTEST_ARGS)

bench: setup
	HF_HUB_OFFLINE=1 $(BIN)/python bench/overhead.py

clean:
	rm -rf $(VENV) dist build .pytest_cache .ruff_cache .mypy_cache
