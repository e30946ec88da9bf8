# era5cache: `make preprocess` then `make test` on a fresh machine (only Python needed).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CONFIG ?= pipeline/era5_2deg.yaml
TRAIN_CONFIG ?= pipeline/ratransformer.yaml
SAMPLE_DIR := data/sample
SAMPLE_STAMP := $(SAMPLE_DIR)/.complete

.PHONY: install sample preprocess train test quick catalogue bench lint clean

install: $(STAMP)

# Where no GPU is present, preinstall the CPU build of torch (on these machines
# `pip install torch==2.13.0` takes it from local disk); elsewhere pip resolves torch>=2.4.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	if ! command -v nvidia-smi >/dev/null 2>&1 && ! $(BIN)/python -c "import torch" 2>/dev/null; then \
		$(BIN)/python -m pip install -q torch==2.13.0 || echo "note: torch==2.13.0 unavailable, pip will resolve torch>=2.4"; \
	fi
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

$(SAMPLE_STAMP): | $(STAMP)
	$(BIN)/era5cache sample --from-config $(CONFIG) --out $(SAMPLE_DIR)
	touch $@

sample: $(SAMPLE_STAMP)

preprocess: $(STAMP) $(SAMPLE_STAMP)
	$(BIN)/era5cache preprocess $(CONFIG)
	$(BIN)/era5cache verify data/cache

train: $(STAMP)
	@test -f data/cache/manifest.json || { echo "no cache in data/cache: run 'make preprocess' first" >&2; exit 2; }
	$(BIN)/era5cache train $(TRAIN_CONFIG)

# Two test processes (pytest-xdist): the suite is mostly single-threaded Python.
test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2

# The quick loop: everything but the end-to-end jobs and training runs marked slow.
quick: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 -m "not slow"

catalogue: $(STAMP)
	$(BIN)/python tests/catalogue.py

bench: $(STAMP)
	mkdir -p bench-results
	$(BIN)/era5cache bench preprocess --json bench-results/preprocess.json
	@test -f data/cache/manifest.json || $(MAKE) preprocess
	$(BIN)/era5cache bench loader --json bench-results/loader.json
	$(BIN)/era5cache bench loader --memory-limit 2GiB --json bench-results/loader-bigger-than-memory.json
	$(BIN)/era5cache bench train --json bench-results/train.json

lint: $(STAMP)
	$(BIN)/ruff check src tests

clean:
	rm -rf data/cache bench-results .pytest_cache
