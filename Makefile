# `make train` / `make test` work from a fresh clone: the first call creates .venv.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The recipe `make train` trains (conf/experiment/); ARGS naming an experiment= replaces it, and
# `make train EXPERIMENT=` trains conf/config.yaml's own defaults (CIFAR-10, ResNet-18).
EXPERIMENT ?= quickstart
# Extra Hydra overrides for `make train`, e.g. make train ARGS="trainer.max_epochs=2"
ARGS ?=
# Extra pytest arguments, e.g. make test PYTEST_ARGS="-k models"
PYTEST_ARGS ?=
# Debian's copy of Fashion-MNIST, which the data layer finds by itself (resnet_exp/data/sources.py).
FASHION_MNIST_DIR := /usr/share/datasets/fashion-mnist
TRAIN_EXPERIMENT := $(if $(findstring experiment=,$(ARGS)),,$(if $(EXPERIMENT),experiment=$(EXPERIMENT)))

.PHONY: setup train test test-full clean fashion-mnist

setup: $(STAMP)

# setuptools' "Editable installation" notice (a box about folders named like the package taking
# precedence in imports) says nothing a user of this project can act on: silenced for this command.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	PYTHONWARNINGS=ignore:::setuptools.command.editable_wheel $(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The quick start's dataset: install Debian's package when it is missing and we may (root with
# apt-get); otherwise do nothing and let the run look in data/, download, or stop with its
# one-line error naming the remedies.
fashion-mnist:
	@if [ ! -f $(FASHION_MNIST_DIR)/train-images-idx3-ubyte.gz ] && [ "$$(id -u)" = 0 ] \
	    && command -v apt-get >/dev/null; then \
	  echo "installing dataset-fashion-mnist (Debian's Fashion-MNIST, 30 MB)"; \
	  apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 \
	    || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1; } \
	    || echo "could not install dataset-fashion-mnist; the run looks for the files elsewhere"; \
	fi

train: $(STAMP) $(if $(filter experiment=quickstart,$(TRAIN_EXPERIMENT)),$(if $(findstring data=,$(ARGS)),,fashion-mnist))
	$(PY) -m resnet_exp.run $(TRAIN_EXPERIMENT) $(ARGS)

# make test: every test but the long end-to-end runs (marked slow); make test-full: all of them (CI).
test: $(STAMP)
	$(PY) -m ruff check --quiet resnet_exp hydra_plugins benchmarks tests
	$(PY) -m pytest -n 2 -m "not slow" --durations=10 $(PYTEST_ARGS)

test-full: $(STAMP)
	$(PY) -m ruff check --quiet resnet_exp hydra_plugins benchmarks tests
	$(PY) -m pytest -n 2 --durations=10 $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
