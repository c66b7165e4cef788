# make run   - create .venv (Python 3.10) if missing, install, run the pipeline on the bundled data
# make test  - the same environment, then the test suite (two pytest workers where there are cores)
# make test-fast - the tests that neither run the pipeline, nor a component's Beam job, nor are slow
#                  (pytest -m 'not e2e and not slow and not beam')
# make lint  - ruff (ruff.toml) over the project and mypy (mypy.ini) over its packages
# make test and make test-fast install Debian's chromium first where none is found (the dashboard tests)
# make image  - build and push the container image of the Kubeflow pipeline (needs Docker)
# Arguments: make run ARGS="--output /tmp/run1 --epochs 5"; make test PYTEST_ARGS="-k schema";
#            make test TESTS=tests/test_config.py (one file);
#            make image IMAGE=gcr.io/PROJECT/mmoe:TAG

VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# A Python 3.10 (TFX 1.16 installs on no other): PYTHON310 if given, else python3.10 on PATH, else
# one installed by pyenv.
PYTHON310 ?= $(shell for p in python3.10 $$(pyenv root 2>/dev/null)/versions/3.10*/bin/python \
	$$HOME/.pyenv/versions/3.10*/bin/python /usr/bin/python3.10 /usr/local/bin/python3.10; do \
	"$$p" -c 'import sys; assert sys.version_info[:2] == (3, 10)' 2>/dev/null && \
	{ command -v "$$p" || echo "$$p"; } && break; done)

.PHONY: install run test test-fast lint browser data constraints image clean

# $(call venv310,DIR): creates DIR with Python 3.10 unless it already has one.
define venv310
	@if [ ! -x $(1)/bin/python ] || ! $(1)/bin/python -c 'import sys; assert sys.version_info[:2] == (3, 10)' 2>/dev/null; then \
	  if [ -z "$(PYTHON310)" ]; then \
	    echo "error: Python 3.10 is required (TFX 1.16 installs on no other) and none was found." >&2; \
	    echo "Install one, e.g. 'pyenv install 3.10.13' or 'apt-get install python3.10 python3.10-venv'," >&2; \
	    echo "or name it: make PYTHON310=/path/to/python3.10" >&2; \
	    exit 1; \
	  fi; \
	  rm -rf $(1); \
	  echo "Creating $(1) with $(PYTHON310)"; \
	  $(PYTHON310) -m venv $(1); \
	fi
	$(1)/bin/python -m pip install --quiet --upgrade pip wheel
endef

install: $(STAMP)

$(STAMP): setup.py constraints.txt
	$(call venv310,$(VENV))
	$(PY) -m pip install --quiet -c constraints.txt -e '.[test,lint]'
	touch $(STAMP)

run: $(STAMP)
	$(PY) local_runner.py $(ARGS)

# pytest-xdist: a worker per core, up to 4; tests grouped so that each shared pipeline run is made
# once (tests/conftest.py).
TEST_WORKERS := -n auto --maxprocesses 4 --dist loadgroup

TESTS := tests

test: $(STAMP) browser
	$(PY) -m pytest $(TESTS) $(TEST_WORKERS) $(PYTEST_ARGS)

test-fast: $(STAMP) browser
	$(PY) -m pytest $(TESTS) -m 'not e2e and not slow and not beam' $(TEST_WORKERS) $(PYTEST_ARGS)

# A violation of either fails CI (.ci/run runs this before the tests).
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

# The headless browser the dashboard tests render pages with: Debian's chromium, installed with
# apt-get (as root, or through sudo) where none is on PATH.
browser:
	@if ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null \
	    && ! command -v google-chrome >/dev/null; then \
	  echo "Installing Debian's chromium for the dashboard tests"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -q && $$SUDO apt-get install -y -q chromium || { \
	    echo "error: the dashboard tests need Chromium: apt-get install -y chromium" >&2; exit 1; }; \
	fi

# Regenerates the bundled data (deterministic: the same seed gives the same file).
data: $(STAMP)
	$(PY) -m pipeline.datasets.ecommerce --rows 20000 --seed 7 --out data/ecommerce

# Re-resolves and freezes every dependency version (after changing setup.py).
constraints:
	rm -rf /tmp/mmoe-constraints-venv
	$(PYTHON310) -m venv /tmp/mmoe-constraints-venv
	/tmp/mmoe-constraints-venv/bin/pip install --quiet --upgrade pip wheel
	/tmp/mmoe-constraints-venv/bin/pip install --quiet '.[test,lint]'
	{ echo "# Every version pip resolved for setup.py on Python 3.10, frozen so that every install is"; \
	  echo "# the same. Regenerate with: make constraints"; \
	  /tmp/mmoe-constraints-venv/bin/pip freeze | grep -v '^mmoe-tfx-pipeline'; } > constraints.txt

# The image kubeflow_runner.py --image names: TFX 1.16.0 with this project installed (Dockerfile).
image:
	@if [ -z "$(IMAGE)" ]; then \
	  echo "error: name the image, e.g. make image IMAGE=gcr.io/PROJECT/mmoe:latest" >&2; exit 1; fi
	@command -v docker >/dev/null || { echo "error: make image needs Docker (docker build, docker push)" >&2; exit 1; }
	docker build -t $(IMAGE) .
	docker push $(IMAGE)

clean:
	rm -rf outputs .pytest_cache
