#!/usr/bin/env bash
# `make lint`: style and formatting (ruff), the layout's import contracts (lint-imports, from
# pyproject.toml) and the types (mypy with the Django and DRF stubs). scripts/test.sh runs it too.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/lint-imports
.venv/bin/mypy
