# `make train` / `make test` work from a fresh clone: the first call creates .venv.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Extra Hydra overrides for `make train`, e.g. make train ARGS="data=synthetic trainer.max_epochs=1"
ARGS ?=
# Extra pytest arguments, e.g. make test PYTEST_ARGS="-k models"
PYTEST_ARGS ?=

.PHONY: setup train test clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

train: $(STAMP)
	$(PY) -m resnet_exp.run $(ARGS)

test: $(STAMP)
	$(PY) -m pytest -n 2 --durations=10 $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
