# Two commands do everything on a fresh machine (see README):
#   make demo   installs ccd into .venv and runs the live ACD against the built-in simulated Asterisk
#   make test   installs ccd with its test tools into .venv, lints and runs the tests
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
COMPILED := build/compiled

.PHONY: demo plan test bench lint clean redis

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

$(VENV)/.installed-bench: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	touch $@

demo: $(VENV)/.installed
	$(BIN)/ccd serve --demo --speed 10 --for 2m

# The simulation runs on the compiled core, as a regular install of ccd would.
plan: $(VENV)/.installed $(COMPILED)/.built
	$(BIN)/ccd staff --calls 100 --period 30m --aht 180s --sl 80/20
	$(BIN)/ccd staff --calls 640 --period 1h --aht 195s --patience 60s --sl 80/10 --max-abandon 0.03
	$(BIN)/ccd staff --forecast config/forecast-example.csv --sl 80/20 --patience 120s --max-abandon 5% --shrinkage 0.3
	PYTHONPATH=$(COMPILED) $(BIN)/ccd simulate config/scenarios/multiskill-day.toml --replications 8 --report report

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The store's tests run a private redis-server: install it where the machine lacks it.
redis:
	@command -v redis-server >/dev/null || { \
		echo "redis-server not found: installing it"; \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq redis-server; \
		else sudo apt-get update -qq && sudo apt-get install -y -qq redis-server; fi; }

test: lint redis
	$(BIN)/python -m pytest

# ccd as a regular install builds it (the compiled core, setup.py), apart from the
# editable sources; without a C compiler it is pure Python (bench/sim.py says so).
$(COMPILED)/.built: setup.py build_backend.py $(wildcard acd/*.py sim/*.py ccd/*.py dialer/*.py telephony/*.py) | $(BIN)/python
	rm -rf $(COMPILED)
	$(BIN)/python -m pip install --quiet --no-deps --target $(COMPILED) .
	touch $@

bench: $(VENV)/.installed-bench $(COMPILED)/.built
	$(BIN)/python bench/erlang.py
	$(BIN)/python bench/routing.py
	$(BIN)/python bench/sim.py --compiled $(COMPILED)
	$(BIN)/python bench/ami.py
	$(BIN)/python bench/hopper.py
	$(BIN)/python bench/pacing.py --quick

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache .hypothesis build *.egg-info
