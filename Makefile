# Every target builds its own virtualenv on a fresh machine (Debian, Python 3.11).
COVERAGE_FLOOR ?= 79
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo webapp test lint unit bench clean s3rver redis-server chromium

# s3rver, a second S3 implementation the integration tests run against, from
# npm into a git-ignored prefix (Debian's nodejs and npm installed if missing).
S3RVER_VERSION := 3.7.1
S3RVER_STAMP   := .node/.s3rver-$(S3RVER_VERSION)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,lint]'
	touch $(STAMP)

## make demo: download a few generated objects (one of several hundred MB) from an embedded local S3 server
demo: $(STAMP)
	$(BIN)/python -m s3pull.demo

## make webapp: the live progress page (examples/webapp/) on http://127.0.0.1:8000/, against the same embedded S3 server
webapp: $(STAMP)
	$(BIN)/python examples/webapp/app.py

## make lint: ruff (lint + format check), mypy --strict on src/, the layer contracts (import-linter)
lint: $(STAMP)
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples
	$(BIN)/mypy
	# No cache: the graph builds in under a second, and a cache would be one more ignored dir.
	$(BIN)/lint-imports --no-cache

$(S3RVER_STAMP):
	command -v npm >/dev/null || { \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update -q && $$SUDO apt-get install -y -q nodejs npm; }
	npm install --prefix .node --no-audit --no-fund --loglevel=error s3rver@$(S3RVER_VERSION)
	touch $@

s3rver: $(S3RVER_STAMP)

# Debian's redis-server, the broker the Celery tests start on a free port
# (installed if missing; the package's own service is not used).
redis-server:
	command -v redis-server >/dev/null || { \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update -q && $$SUDO apt-get install -y -q redis-server; }

# Debian's chromium and its chromedriver, the real browser the web page's
# test drives (installed if missing; selenium never fetches a driver).
chromium:
	command -v chromium >/dev/null && [ -x /usr/bin/chromedriver ] || { \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update -q && $$SUDO apt-get install -y -q chromium chromium-driver; }

## make test: lint, then the whole suite (unit, functional, integration, docstring examples) with coverage
test: lint $(S3RVER_STAMP) redis-server chromium
	$(BIN)/pytest --cov --cov-report=term --cov-fail-under=$(COVERAGE_FLOOR) --doctest-modules src/s3pull tests

unit: $(STAMP)
	$(BIN)/pytest tests/unit

## make bench: s3pull (in process, --processes, on Celery) side by side with boto3, the AWS CRT, obstore and s5cmd (see bench/README.md)
bench: $(STAMP) redis-server
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) .node .pytest_cache .mypy_cache .ruff_cache .coverage

## make reliability: s3pull, boto3 and s5cmd under injected faults -> bench/results/reliability.md
.PHONY: reliability
reliability: $(STAMP)
	$(BIN)/python -m bench.reliability
