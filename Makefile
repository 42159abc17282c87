# Anomalyze: every target sets up what it needs (a virtualenv in .venv from the pinned
# requirements) so a fresh clone needs only `make run` or `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Where `make data` copies NSL-KDD from instead of downloading it (CI: ../shared/data/nsl-kdd).
NSLKDD_SEED ?= $(wildcard ../shared/data/nsl-kdd)
PYTEST_ARGS ?=
# `make watch`: the Zeek log folder to follow and where alerts go (watch_zeek.py --help).
ZEEK_LOGS ?= /opt/zeek/logs/current
WATCH_ARGS ?= --alerts-file data/watch/alerts.ndjson

.PHONY: help venv data train retrain run watch score test test-fast lint bench clean

help:
	@echo "make run    start the ML API and the web frontend (committed model; no data needed)"
	@echo "make test   lint and run every test (sets up the venv and the data set first)"
	@echo "make test-fast  lint and run the tests not marked slow or e2e (the inner loop)"
	@echo "make data   fetch NSL-KDD into \$$ANOMALYZE_DATA_DIR (default data/), checksums verified"
	@echo "make train  train the default model on data/KDDTrain+.txt into models/"
	@echo "make retrain  retrain now on KDDTrain+ plus kept uploads; promoted only if not worse"
	@echo "make watch  follow \$$ZEEK_LOGS/conn.log live and write alerts (\$$WATCH_ARGS)"
	@echo "make bench  run the benchmarks and write benchmarks/results/"
	@echo "make score INPUT='logs/' OUT=scored/ [ARGS='--scheduler tcp://host:8786']"
	@echo "           score log archives on Dask (score_logs.py --help)"

$(STAMP): requirements.txt requirements-dev.txt api/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

venv: $(STAMP)

data: venv
	$(PY) -m utils.dataset $(if $(NSLKDD_SEED),--seed-from $(NSLKDD_SEED))

train: data
	$(PY) train_model.py

retrain: data
	$(PY) retrain_model.py --force

run: venv
	$(PY) scripts/run_local.py

watch: venv
	$(PY) watch_zeek.py $(ZEEK_LOGS) $(WATCH_ARGS)

# ruff, then the import contracts of pyproject.toml ([tool.importlinter]): the layering.
lint: venv
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports --no-logo --no-cache

test: venv data lint
	$(PY) -m pytest $(PYTEST_ARGS)

# The inner loop: no test marked slow (trains models, loads the server) or e2e (starts real
# processes); `make test` and CI still run everything.
test-fast: venv data lint
	$(PY) -m pytest -m "not slow and not e2e" $(PYTEST_ARGS)

bench: data
	$(PY) -m benchmarks.run_all

# Score log archives on Dask: `make score INPUT="archive/ more.log.gz" OUT=scored/`.
INPUT ?=
OUT ?= scored
ARGS ?=
score: venv
	$(PY) score_logs.py $(INPUT) --out $(OUT) $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache tests/artifacts
