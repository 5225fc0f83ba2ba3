# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv and install galakit first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev
# pip never picks another torch than constraints.txt names (a CPU wheel here, the CUDA build of it elsewhere).
PIP := $(BIN)/pip install --quiet --constraint constraints.txt

.PHONY: install demo test test-fast lab lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(PIP) --upgrade pip
	$(PIP) torch==2.13.0
	$(PIP) -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/galakit demo

test: $(STAMP)
	$(BIN)/ruff check galakit tests bench tutorials exercises
	$(BIN)/pytest

test-fast: $(STAMP)
	$(BIN)/pytest -m "not slow and not processes"

# JupyterLab serves the project folder and opens on tutorials/ (exercises/ beside it); it refuses to start as root
# without --allow-root (root is the user in containers and CI).
lab: $(STAMP)
	$(BIN)/jupyter lab --ServerApp.root_dir=. --LabApp.default_url=/lab/tree/tutorials \
		$(if $(filter 0,$(shell id -u)),--allow-root)

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(PIP) -e ".[bench]"
	$(BIN)/python bench/a2c_throughput.py

clean:
	rm -rf $(VENV) runs .pytest_cache
