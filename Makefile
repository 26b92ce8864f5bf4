# cartoparty: `make run` serves the app with a demo event, `make test` runs the whole suite.
# Both set up what is missing first: Debian packages, the virtualenv, the local database.

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 5000
export PORT

.PHONY: run test setup system-deps test-deps venv lint pytest bench db-stop clean

run: setup
	@scripts/run.sh

test: setup test-deps
	$(BIN)/ruff check cartoparty tests bench migrations
	$(BIN)/pytest

setup: system-deps venv

system-deps:
	@scripts/system-deps.sh

test-deps:
	@scripts/system-deps.sh chromium osmium-tool

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

bench: setup
	$(BIN)/python bench/ingest.py

db-stop:
	$(BIN)/python -m cartoparty.localdb stop

clean: db-stop
	rm -rf $(VENV) .local
