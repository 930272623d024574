# Two commands: `make run` (the main job, offline, on the embedded synthetic data) and `make test`.
# Every target first makes sure .venv holds the pinned stack; re-running is a no-op when nothing changed.
SHELL := /bin/bash
PYTHON_VERSION := $(shell cat .python-version)
PYENV_PYTHON := $(shell pyenv prefix $(PYTHON_VERSION) 2>/dev/null)/bin/python
PYTHON ?= $(if $(wildcard $(PYENV_PYTHON)),$(PYENV_PYTHON),python3.10)
VENV := .venv
BIN := $(VENV)/bin
PROTOS := $(patsubst %.proto,%_pb2.py,$(wildcard serving/protos/*.proto))
CLIENT_PROTOS := serving/client_protos/__init__.py
OUT ?= out
# pytest-xdist workers; each test file runs whole on one worker (its module fixtures are built once). Two on
# the 2-core development machine: 7.3 min against 21 serially, and three were slower (8.0 min).
TEST_WORKERS ?= 2
export TF_CPP_MIN_LOG_LEVEL ?= 1

.PHONY: setup browser run serve test clean

setup: $(VENV)/.installed $(PROTOS) $(CLIENT_PROTOS)

$(VENV)/.installed: requirements/lock.txt setup.py .python-version
	@command -v "$(PYTHON)" >/dev/null || { echo "Python $(PYTHON_VERSION) not found at $(PYTHON): install it with 'pyenv install $(PYTHON_VERSION)' or pass PYTHON=/path/to/python3.10" >&2; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip==24.2
	$(BIN)/pip install --quiet --progress-bar off -r requirements/lock.txt
	$(BIN)/pip install --quiet --no-deps -e .
	$(BIN)/pip check
	touch $@

serving/protos/%_pb2.py: serving/protos/%.proto $(VENV)/.installed
	$(BIN)/python -m grpc_tools.protoc -I. --python_out=. $<

# The TF-free client's copy of the TF Serving protos, from the descriptors the installed tensorflow_serving carries.
$(CLIENT_PROTOS): serving/generate_client_protos.py $(VENV)/.installed
	rm -rf serving/client_protos
	$(BIN)/python -m serving.generate_client_protos

run: setup
	$(BIN)/recsys pipeline run --pipeline-root $(OUT)/pipeline --serving-dir $(OUT)/serving \
	  --report $(OUT)/report.html --summary-json $(OUT)/summary.json --demo

serve: setup
	$(BIN)/recsys serve --model_config_file serving/config/models.config --serving_dir $(OUT)/serving --enable_batching \
	  --batching_parameters_file serving/config/batching_parameters.txt \
	  --monitoring_config_file serving/config/monitoring.config --rest_api_port 8501

# The report test renders the HTML report in Debian's headless Chromium; installed here when we are root.
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
	  echo "chromium is not installed: the report's browser test will be skipped (apt-get install chromium)"

test: setup browser
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile tests

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache
