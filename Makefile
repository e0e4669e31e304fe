# Set-up is part of every target: `make run` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export TF_USE_LEGACY_KERAS := 1
export TF_CPP_MIN_LOG_LEVEL := 2
export PYTHONUNBUFFERED := 1

.PHONY: install run test test-fast flipkart bench clean image image-check compile

install: $(STAMP)

# Re-installs only when the requirement files or the package definition change
# (idempotent otherwise). The project itself goes in editable (pyproject.toml): its
# modules, the `categorize-pipeline` command and `python bench/NAME.py` import from this
# checkout; --no-deps because the lock above already installed every dependency, and
# --no-build-isolation to build with the venv's setuptools instead of fetching one.
$(STAMP): requirements.txt constraints.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --ignore-requires-python -c constraints.txt -r requirements.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
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

# The cluster image, tagged with the commit it is built from (immutable; never :latest).
# Changed or untracked files among what the image copies have no commit to name: refused.
IMAGE_REPO ?= categorize-pipeline
IMAGE_TAG ?= $(shell git rev-parse --short=12 HEAD)
IMAGE_SOURCES := requirements.txt constraints.txt pyproject.toml pipeline.py pipeline_definition.py schema components trainer evaluator kubeflow
image:
	@test -z "$$(git status --porcelain -- $(IMAGE_SOURCES))" || { echo "error: uncommitted changes in $(IMAGE_SOURCES); commit first (the image tag is the commit, $(IMAGE_TAG))" >&2; git status --short -- $(IMAGE_SOURCES) >&2; exit 1; }
	docker build -f kubeflow/Dockerfile -t $(IMAGE_REPO):$(IMAGE_TAG) .
	@echo "built $(IMAGE_REPO):$(IMAGE_TAG)"

# The image's lock and smoke test without Docker: a fresh venv on the image's exact Python
# (pyenv's 3.11.7; IMAGE_PYTHON=... to use another), the lock installed from the public
# registry alone (pip --isolated: no pip config or PIP_* variables, so no local wheel
# folder or extra index; no cache), the project installed into it as the image installs
# it (a wheel, no deps), then kubeflow/image_smoke_test.py run outside the checkout, so it
# imports the installed copy. It downloads and installs the whole lock, minutes
# (BENCHMARKS.md), so it is not part of `make test`.
IMAGE_PYTHON ?= $(shell pyenv root 2>/dev/null || echo $$HOME/.pyenv)/versions/3.11.7/bin/python
CHECK_VENV ?= .cache/image-check-venv
image-check:
	@test -x $(IMAGE_PYTHON) || { echo "error: $(IMAGE_PYTHON) not found: the image's Python (3.11.7); set IMAGE_PYTHON" >&2; exit 1; }
	rm -rf $(CHECK_VENV)
	$(IMAGE_PYTHON) -m venv $(CHECK_VENV)
	$(CHECK_VENV)/bin/pip --isolated install -q --no-cache-dir --ignore-requires-python -c constraints.txt -r requirements.txt
	$(CHECK_VENV)/bin/pip --isolated check
	@! $(CHECK_VENV)/bin/pip --isolated list 2>/dev/null | grep -iE '^(torch|nvidia-|triton)' || { echo "error: torch or CUDA packages in the image lock" >&2; exit 1; }
	$(CHECK_VENV)/bin/pip --isolated install -q --no-cache-dir --no-deps --no-build-isolation .
	rm -rf build
	cd $(CHECK_VENV) && bin/python -m kubeflow.image_smoke_test --installed

clean:
	rm -rf pipelines serving outputs
