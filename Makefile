# Two commands for a fresh machine:
#   make demo   — create .venv, install loglake, run the app-json example into a local lake, query it;
#                 then the same through Kafka: a local broker, a service logging to it, the kafka example
#   make test   — create .venv, install loglake with test extras, run mypy --strict and the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test setup bench schema reference clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; v = sys.version_info[:2]; sys.exit(0 if (3, 11) <= v <= (3, 12) else "loglake needs Python 3.11 or 3.12 (Bytewax has no wheels for %d.%d); set PYTHON=python3.11" % v)'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	@touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/loglake validate examples/app-json/pipeline.yaml
	$(BIN)/loglake test examples/app-json/pipeline.yaml
	rm -rf examples/app-json/lake
	$(BIN)/loglake run examples/app-json/pipeline.yaml
	$(BIN)/loglake query -p examples/app-json/pipeline.yaml "SELECT level, count(*) AS records FROM app GROUP BY level ORDER BY records DESC"
	$(BIN)/loglake query -p examples/app-json/pipeline.yaml "SELECT path, count(*) AS requests, round(quantile_cont(duration_ms, 0.95), 1) AS p95_ms FROM app GROUP BY path HAVING count(*) >= 20 ORDER BY p95_ms DESC LIMIT 5"
	$(BIN)/loglake query -p examples/app-json/pipeline.yaml "SELECT regexp_extract(source, '[^/]+$$') AS file, _line, _error FROM dead_letter"
	$(BIN)/python examples/kafka/demo.py

test: $(STAMP)
	PYTHON=$(BIN)/python .ci/typecheck
	$(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/file_json_parquet.py --lines 1000000 --runs 5

schema: $(STAMP)
	$(BIN)/loglake schema -o schemas/pipeline.schema.json

reference: $(STAMP)
	$(BIN)/python -m loglake.pipelines.reference README.md

clean:
	rm -rf $(VENV) examples/*/lake
