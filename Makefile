# The two commands: `make demo` (the main job on the embedded default) and `make test`.
# Both set up what they need: system packages, .venv, requirements, migrations.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.requirements-$(shell sha256sum requirements.txt | cut -c1-16)

.PHONY: demo demo-compare test test-fast serve setup migrate lint system

demo: setup migrate
	$(PY) manage.py demo

# The demo, then version 1.1 of its model compared with 1.0 (a comparison run) and the signed
# comparison report.
demo-compare: setup migrate
	$(PY) manage.py demo --compare

# make lint, then every test: SQLite and PostgreSQL tiers across the cores (scripts/test.sh).
test: setup
	scripts/test.sh

# The edit loop: no sandbox, no browser, no PostgreSQL, no subprocess demo (under 2 minutes).
test-fast: setup
	scripts/test.sh --fast

# The web app on 127.0.0.1:${PORT:-8000} and real Celery workers on a broker of files under
# var/broker (no Redis): the long work runs in the workers, as in production (scripts/serve.sh).
serve: setup migrate
	scripts/serve.sh

# Style, formatting, the import contracts (pyproject.toml) and the types.
lint: setup
	scripts/lint.sh

setup: system $(STAMP)

system:
	@scripts/setup-system.sh

$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	rm -f $(VENV)/.requirements-* && touch $@

migrate: setup
	$(PY) manage.py migrate --noinput -v 0
