# The two set-up commands: `make demo` and `make test`. Each creates .venv when missing and installs
# only what it needs: the demo the core and mnist1d; the tests the `test` extra (a superset of the
# demo's). One stamp each, so `make demo` then `make test` installs the rest.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_STAMP := $(VENV)/.installed-demo
TEST_STAMP := $(VENV)/.installed-test
PIP_INSTALL := $(BIN)/python -m pip install -q --disable-pip-version-check -c constraints.txt

.PHONY: demo test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(DEMO_STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(PIP_INSTALL) -e '.[mnist1d]'
	touch $(DEMO_STAMP)

$(TEST_STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(PIP_INSTALL) -e '.[test]'
	touch $(TEST_STAMP) $(DEMO_STAMP)

demo: $(DEMO_STAMP)
	$(BIN)/python -m adaprune.demo

test: $(TEST_STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest -q

lint: $(TEST_STAMP)
	$(BIN)/ruff check src tests benchmarks

# Every benchmark in benchmarks/ (about an hour on 2 cores); results land in benchmarks/results/.
bench: $(TEST_STAMP)
	for script in quality_adapruner cost_adapruner mask_adapruner quality_dedup own_loop; do \
		$(BIN)/python benchmarks/$$script.py || exit 1; done
	$(BIN)/python benchmarks/compare_methods.py --datasets mnist1d --prune 0.3,0.5 --stem compare_methods_baselines \
		--methods random,el2n,grand,forgetting,uncertainty,aum,herding,kcenter,moderate,prototypes,ccs,cgscore,glister,semdedup
	$(BIN)/python benchmarks/make_index.py

clean:
	rm -rf $(VENV) demo-output
