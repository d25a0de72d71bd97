# The two set-up commands: `make demo` and `make test`. Each creates .venv when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PIP_INSTALL := $(BIN)/python -m pip install -q --disable-pip-version-check -c constraints.txt

.PHONY: demo test lint bench-quality bench-cost clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) -e '.[all,dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m adaprune.demo

test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

bench-quality: $(STAMP)
	$(BIN)/python benchmarks/quality_adapruner.py

bench-cost: $(STAMP)
	$(BIN)/python benchmarks/cost_adapruner.py

clean:
	rm -rf $(VENV) demo-output
