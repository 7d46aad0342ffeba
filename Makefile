# One-command set-up: each target creates .venv when missing and installs the project into it.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.jamwave-installed
# The CPU build of torch that this kind of machine holds; pip must never resolve a multi-GB CUDA build.
TORCH := torch==2.13.0
DEMO_OUT ?= demo-output

.PHONY: demo test test-all bench lint clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e '.[test,cuda-compile]' $(TORCH)
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/jamwave demo --out $(DEMO_OUT) --size small

test: $(STAMP)
	$(PY) -m pytest -q

# The slow tests include the jax-md cross-check of the bulk modulus: install the peers first.
test-all: $(STAMP)
	$(PY) -m pip install --quiet -e '.[test,peers]' $(TORCH)
	$(PY) -m pytest -q -m "slow or not slow"

bench: $(STAMP)
	$(PY) -m benchmarks.run_all

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
