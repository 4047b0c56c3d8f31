# The two commands a newcomer needs: `make demo` and `make test`. Both install what they need first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo up test lint smoke-tansu bench chaos clean

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt -r requirements-dev.txt
	$(BIN)/pip install --quiet --no-deps -e .
	@touch $(STAMP)

install: $(STAMP)

## Start everything on the embedded default, feed it a realistic sample, print what happened.
demo: $(STAMP)
	$(BIN)/reintegra demo

## Run the stack for real use (no sample data) until Ctrl-C.
up: $(STAMP)
	$(BIN)/reintegra up

## The test suite, against a real broker (Apache Kafka; Tansu where Java/Maven are missing) and Postgres.
test: $(STAMP)
	$(BIN)/python -m pytest
	$(BIN)/python -m pytest tests/browser

lint: $(STAMP)
	$(BIN)/ruff check .

## The end-to-end case on the Tansu fallback broker.
smoke-tansu: $(STAMP)
	REINTEGRA_TEST_BROKER=tansu $(BIN)/python -m pytest tests/e2e/test_journey.py -k "one_trace"

## The floor beside it, when the shared reference material is there (see docs/performance or README).
FLOOR ?= ../shared/bench/baseline_pipeline.py
bench: $(STAMP)
	$(BIN)/python bench/pipeline_bench.py --cases 5000 $(if $(wildcard $(FLOOR)),--floor $(FLOOR))

## The seeded fault harness: two instances of every service, faults while cases flow, invariants checked.
chaos: $(STAMP)
	$(BIN)/python -m bench.chaos --seed $${SEED:-1} --cases $${CASES:-2000}

clean:
	rm -rf .reintegra $(VENV)
