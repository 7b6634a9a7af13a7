# Two commands for a fresh Linux machine with Python 3.11+; each sets itself up on first use.
#   make course   # venv + pinned install, then every notebook by papermill (quick profile) into output/, then a table
#   make test     # venv + pinned install, then unit tests and the notebooks under nbval
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PROFILE ?= quick
# Where the original MNIST / Fashion-MNIST .gz files are, if you have them offline (CI: ../shared/data).
SHARED_DATA ?= ../shared/data

.PHONY: course sweep test lint install data benchmark gpu-check clean

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

install: $(VENV)/.installed

data: install
	@if [ -d "$(SHARED_DATA)" ]; then $(PY) -m course_utils data --copy-from "$(SHARED_DATA)"; \
	else echo "no $(SHARED_DATA): datasets will be downloaded by torchvision on first use"; fi

# A sweep of one point (python -m course_utils run): every notebook with the profile's defaults, progress on stderr.
course: data
	$(PY) -m course_utils run --profile $(PROFILE)

# A batch rerun of a grid file (python -m course_utils sweep), e.g. make sweep GRID=grids/example.yaml WORKERS=2
GRID ?= grids/example.yaml
WORKERS ?= 1
sweep: data
	$(PY) -m course_utils sweep --grid $(GRID) --workers $(WORKERS)

# Lint and format check (ruff), then unit tests, then every notebook under nbval, each with a timing line. pytest
# exits 5 when it collected no test: a test run that tests nothing is a failure here.
test: data
	@start=$$(date +%s); $(MAKE) --no-print-directory lint; rc=$$?; \
	echo "[test] lint: rc=$$rc in $$(( $$(date +%s) - start )) s"; [ $$rc -eq 0 ] || exit $$rc
	@status=0; for suite in tests notebooks; do \
	  start=$$(date +%s); $(PY) -m pytest $$suite; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests in $$suite/: failing"; rc=1; fi; \
	  echo "[test] $$suite: rc=$$rc in $$(( $$(date +%s) - start )) s"; \
	  [ $$rc -eq 0 ] || status=$$rc; \
	done; exit $$status

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

benchmark: data
	$(PY) benchmarks/bench_protocol.py

# On a machine with a CUDA GPU: unit tests, every notebook (quick, device=cuda), same-seed bit identity and the GPU
# benchmark, within about 8 minutes; writes output/gpu_check/summary.json. Installs nothing: it runs with the venv
# when there is one, else with the machine's $(PYTHON) and its own torch (a GPU machine without network: CONTRIBUTING).
gpu-check:
	@if [ -x $(PY) ]; then py=$(PY); else py=$(PYTHON); fi; \
	if [ -d "$(SHARED_DATA)" ]; then $$py -m course_utils data --copy-from "$(SHARED_DATA)" || exit; fi; \
	$$py tools/gpu_check.py

clean:
	rm -rf output
