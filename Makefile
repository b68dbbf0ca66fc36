# Two commands do all the set-up on a fresh machine:
#   make run    creates .venv, installs gatlib (torch pinned to the 2.13.0 CPU build), runs
#               gatlib compare (dense vs sparse attention, the small default set)
#   make test   the same set-up, then the whole test suite
# Other targets: make bench (CPU benchmark against PyG), make clean.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
TORCH  := torch==2.13.0

.PHONY: run test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e ".[test,gpu]" $(TORCH)
	touch $(STAMP)

# The main job: dense vs sparse vs hybrid attention on the small default set (CLUSTER-style SBM,
# long-range sequences, digits as grid graphs, MUTAG), table printed, plots in results/compare.
run: $(STAMP)
	$(BIN)/gatlib compare

# The Triton kernels run on the CPU under Triton's interpreter (a GPU runs them natively).
test: $(STAMP)
	TRITON_INTERPRET=1 $(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python experiments/benchmarks/bench_gat.py --what attention && $(BIN)/python experiments/benchmarks/bench_gat.py --what layer

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
