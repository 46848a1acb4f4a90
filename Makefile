# Ferry: `make run` for a demo stack, `make test` for the whole suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8000
DEMO_ACCOUNT ?= demo
DEMO_DAYS ?= 30

.PHONY: install services browser db run test lint unit integration e2e install-check lock bench clean

$(BIN)/ferry: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(BIN)/ferry

install: $(BIN)/ferry

services:
	@bash scripts/services.sh

# Debian's chromium for the page tests (Playwright drives it; no browser download).
browser:
	@bash scripts/browser.sh

db: install services
	$(BIN)/ferry db upgrade

# Migrate, create the demo account, seed it once, print a token, run everything.
run: db
	@$(BIN)/ferry seed $(DEMO_ACCOUNT) --days $(DEMO_DAYS) --if-empty
	@token=$$($(BIN)/ferry accounts create $(DEMO_ACCOUNT) | tail -n 1); \
	echo ""; \
	echo "Ferry is starting on http://127.0.0.1:$(PORT)  (Ctrl-C stops it)"; \
	echo "Demo account '$(DEMO_ACCOUNT)', token: $$token"; \
	echo "In a browser: open http://127.0.0.1:$(PORT)/ and sign in with that token"; \
	echo "Try: curl -H 'Authorization: Bearer $$token' -H 'Content-Type: application/json' \\"; \
	echo "       -d '{\"type\":\"archive\"}' http://127.0.0.1:$(PORT)/api/v1/exports"; \
	echo ""
	$(BIN)/ferry up --port $(PORT)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: install services browser lint
	$(BIN)/pytest

unit: install
	$(BIN)/pytest tests/unit

integration: install services
	$(BIN)/pytest tests/integration

e2e: install services browser
	$(BIN)/pytest tests/e2e

# The wheel in fresh venvs without extras (plain, and from the lock as the image does).
install-check: install services
	$(BIN)/pytest -m install

# requirements.lock: the image's runtime dependencies, pinned with hashes, for the image's
# Python and platform whatever machine runs this. Existing pins are kept unless
# LOCK_FLAGS=--upgrade (or --upgrade-package NAME).
lock: install
	$(BIN)/uv pip compile pyproject.toml --quiet --generate-hashes \
		--python-version 3.11 --python-platform x86_64-manylinux_2_28 \
		$(LOCK_FLAGS) -o requirements.lock

bench: install services
	$(BIN)/python bench/export.py
	$(BIN)/python bench/cancel.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
