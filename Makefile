# Two commands do all the set-up (see README):
#   make search   runs the main job: a predictor-guided search on NAS-Bench-201
#   make test     runs the tests
# Both create .venv and install into it, torch first (CPU build by default).
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
# the main job (README): its configuration, and a fresh run directory each time
SEARCH_CONFIG ?= experiments/nb201-cifar10-dele.yaml
SEARCH_OUT ?= runs/nb201-cifar10-dele-$(shell date +%Y%m%d-%H%M%S)

# the benchmark tables; default to ../shared/data when it exists
FLOWNAS_DATA ?= $(if $(wildcard ../shared/data),$(abspath ../shared/data),)
export FLOWNAS_DATA
# keep every Ray process on 127.0.0.1
export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER := 0

.PHONY: search test install clean-venv

install: $(VENV)/.installed

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@

search: install
	@test -n "$(FLOWNAS_DATA)" || { echo "FLOWNAS_DATA is not set: point it at the benchmark tables (see README, 'Data')"; exit 1; }
	$(VENV)/bin/flownas search $(SEARCH_CONFIG) --out $(SEARCH_OUT)

test: install
	$(PY) -m pytest -q -n 2 --dist loadgroup $(PYTEST_ARGS)

clean-venv:
	rm -rf $(VENV)
