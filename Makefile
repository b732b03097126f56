# Asterisk AI Gateway - the commands the README gives.
.PHONY: install run demo demo-voice test test-sqlite test-postgres lint typecheck bench bench-smoke ari-ops screenshots

PY := .venv/bin/python
TEST_PG ?= postgresql://postgres@127.0.0.1:5432/test

install: .venv/.installed
.venv/.installed: pyproject.toml poetry.lock
	bash scripts/bootstrap
	touch $@

run: install            ## the service on embedded defaults (SQLite, Redis on localhost, dev-mode admin login)
	DEV_MODE=$${DEV_MODE:-true} $(PY) -m app.cli serve --host 127.0.0.1 --port 8000

demo: install           ## one call through a fake Asterisk, no PBX and no API key needed
	$(PY) -m app.cli demo

demo-voice: install     ## a voice call: synthetic caller, offline STT/model/TTS (keys: real vendors); writes a WAV
	$(PY) -m app.cli demo --voice

test: install           ## the whole suite: SQLite, then the database tests again on PostgreSQL
	rm -f test-artifacts/suite.log
	$(PY) -m pytest -q
	TEST_DATABASE_URL=$(TEST_PG) $(PY) -m pytest -q -m "not browser" tests/test_call_path.py tests/test_call_log.py tests/test_catalog.py tests/test_voice_storage.py tests/test_voice.py tests/api

screenshots: install    ## refresh the README pictures in docs/screenshots/ (the browser tests, headless Chromium)
	UPDATE_SCREENSHOTS=1 $(PY) -m pytest -q -m browser tests/browser

lint: install
	.venv/bin/ruff check app tests scripts benchmarks
	.venv/bin/ruff format --check app tests scripts benchmarks
	.venv/bin/mypy
	.venv/bin/lint-imports

bench: install          ## the full benchmark (~8 min on 2 cores): table, benchmarks/results/latest.json, profile
	$(PY) -m benchmarks.run --profile

bench-smoke: install    ## a few seconds, to keep the harness working (CI runs it inside the test suite)
	$(PY) -m benchmarks.run --smoke

ari-ops:                ## regenerate app/vendor/ari/operations.json from ../shared/ari-api-docs
	$(PY) -m app.vendor.ari.generate
