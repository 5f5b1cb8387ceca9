# The two set-up commands: `make run` and `make test` (see README.md).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.requirements-installed

.PHONY: run test test-sqlite test-postgres lint bench venv chromium migrate demo

venv: $(STAMP)

$(STAMP): requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $(STAMP)

migrate: venv
	DEBUG=1 $(BIN)/python manage.py migrate --noinput

demo: migrate
	DEBUG=1 $(BIN)/python manage.py seed_demo

# Serves the portal on http://127.0.0.1:8000 with a django-q2 worker beside it.
run: demo
	PATH="$(CURDIR)/$(BIN):$$PATH" DEBUG=1 $(BIN)/honcho start -f Procfile

# Browser tests drive Debian's Chromium; install it when it is missing.
chromium:
	@test -x /usr/bin/chromium || (command -v apt-get >/dev/null && \
	  (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) ) || \
	  (echo "Chromium is missing: install Debian's chromium package (apt-get install chromium)." && exit 1)

# The whole suite, on the database named by DATABASE_URL (SQLite by default).
test: venv chromium
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check .

bench: venv
	$(BIN)/python -m bench
