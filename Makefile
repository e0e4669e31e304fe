# Set-up is part of every target: `make run` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export TF_USE_LEGACY_KERAS := 1
export TF_CPP_MIN_LOG_LEVEL := 2
export PYTHONUNBUFFERED := 1

.PHONY: install run test test-fast flipkart bench clean image compile

install: $(STAMP)

# Re-installs only when the requirement files change (idempotent otherwise).
$(STAMP): requirements.txt constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --ignore-requires-python -c constraints.txt -r requirements.txt
	touch $(STAMP)

run: install
	$(PY) pipeline.py run $(RUN_ARGS)

flipkart: install
	$(PY) pipeline.py run --spec flipkart --catalog ../shared/datasets/flipkart $(RUN_ARGS)

test: install
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-fast: install
	$(PY) -m pytest -q -m "not e2e" $(PYTEST_ARGS)

# Every benchmark of BENCHMARKS.md in turn (about an hour on 2 cores; each also runs alone).
bench: install
	$(PY) bench/quality.py
	$(PY) bench/thresholding.py --pipeline-root pipelines/fashion
	$(PY) bench/encoders.py
	$(PY) bench/categorize.py
	$(PY) bench/training.py
	$(PY) bench/pipeline_scale.py --rerun

compile: install
	$(PY) pipeline.py compile --output outputs/pipeline.json

image:
	docker build -f kubeflow/Dockerfile -t $${IMAGE:-categorize-pipeline:latest} .

clean:
	rm -rf pipelines serving outputs
