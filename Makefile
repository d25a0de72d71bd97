# The two set-up commands: `make demo` and `make test`. Each creates .venv when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PIP_INSTALL := $(BIN)/python -m pip install -q --disable-pip-version-check -c constraints.txt

.PHONY: demo test lint bench clean

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

# Every benchmark in benchmarks/ (about an hour on 2 cores); results land in benchmarks/results/.
bench: $(STAMP)
	for script in quality_adapruner cost_adapruner mask_adapruner scale_dedup quality_dedup own_loop; do \
		$(BIN)/python benchmarks/$$script.py || exit 1; done
	$(BIN)/python benchmarks/compare_methods.py --datasets mnist1d --stem compare_methods_mnist1d
	$(BIN)/python benchmarks/compare_methods.py --datasets digits --stem compare_methods_digits

clean:
	rm -rf $(VENV) demo-output
