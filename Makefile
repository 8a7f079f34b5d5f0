# The two commands: `make run` (the whole platform) and `make test` (the whole suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench soak lint format venv services stop-services clean-local load

$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --upgrade pip
	@$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	@touch $(STAMP)

venv: $(STAMP)

services: venv
	@$(BIN)/python scripts/ensure_services.py

# the project-local PostgreSQL and Redis under .local/ (`make test` and `make services` leave
# running the ones they start; `make run` stops its own on exit)
stop-services: venv
	@$(BIN)/python scripts/ensure_services.py --stop

run: venv
	@scripts/run.sh

test: venv
	@scripts/test.sh

bench: venv
	@scripts/bench.sh

# the fault soak (docs/soak.md): `make soak SOAK_PAYMENTS=10000` for the long run
soak: venv
	@$(BIN)/python -m soak

lint: venv
	@$(BIN)/ruff check .
	@$(BIN)/ruff format --check .
	@$(BIN)/lint-imports

format: venv
	@$(BIN)/ruff format .
	@$(BIN)/ruff check --fix .

# some demo traffic for a running `make run` (docs/observability.md): `make load PAYMENTS=200`
load: venv
	@$(BIN)/python manage.py demo_load --payments $(or $(PAYMENTS),60)

clean-local:
	rm -rf .local
