# The two commands: `make demo` (the main job on the embedded default) and `make test`.
# Both set up what they need: system packages, .venv, requirements, migrations.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.requirements-$(shell sha256sum requirements.txt | cut -c1-16)

.PHONY: demo test serve setup migrate lint system

demo: setup migrate
	$(PY) manage.py demo

test: setup
	scripts/test.sh

serve: setup migrate
	$(PY) manage.py runserver 127.0.0.1:8000

lint: setup
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

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
