# Every target creates the virtual environment and installs clearhouse into it when missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SEEDS ?= 20

BROWSER := /usr/bin/chromium

.PHONY: venv browser demo test bench simulate lint clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[network,dev]'
	touch $(STAMP)

# Debian's Chromium for the browser tests (dashboard, HTML report); needs root on a fresh machine
browser:
	@test -x $(BROWSER) || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

demo: $(STAMP)
	$(VENV)/bin/clearhouse demo --data .clearhouse-demo

test: $(STAMP) browser
	$(PY) -m pytest -n 2

simulate: $(STAMP)
	$(VENV)/bin/clearhouse simulate --seeds $(SEEDS)

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks

clean:
	rm -rf .clearhouse-demo .pytest_cache
