# Two commands do all the set-up on a fresh machine:
#   make run    creates .venv, installs gatlib with its experiments extra (torch pinned to the
#               2.13.0 CPU build), runs
#               gatlib compare (dense vs sparse attention, the small default set)
#   make test   the same set-up, then the whole test suite, in three named groups
# Other targets: make bench (CPU benchmark against PyG, about 5.5 GB of memory; writes
# results/, git-ignored), make clean.

PYTHON ?= python3
# Datasets: downloaded from their pinned sources on first use. This project's own machines keep a
# read-only mirror beside the checkout; where it exists it is named here, so that make run and
# make test (and CI) never need the network. A user's GATLIB_MIRROR wins.
SHARED_MIRROR := $(wildcard $(CURDIR)/../shared/datasets)
ifneq ($(SHARED_MIRROR),)
export GATLIB_MIRROR ?= $(abspath $(SHARED_MIRROR))
endif
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
TORCH  := torch==2.13.0

.PHONY: run test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e ".[experiments,test,gpu]" $(TORCH)
	touch $(STAMP)

# The main job: dense vs sparse vs hybrid attention on the small default set (CLUSTER-style SBM,
# long-range sequences, digits as grid graphs, MUTAG), table printed, plots in results/compare.
run: $(STAMP)
	$(BIN)/gatlib compare

# The Triton kernels run on the CPU under Triton's interpreter (a GPU runs them natively).
# Three groups, each named before it starts and followed by its five slowest tests, so that a
# long wait shows what it is waiting for; every group runs, and make fails if one failed.
# The whole suite took 10.0 minutes on this project's two cores (2026-12-07, 22:53-23:06, in a
# fresh clone's `.ci/run`, nothing else running: 6.1 + 1.7 + 2.1 min; 11.4 min with the venv's
# installation); the first group, with the Triton kernels under the interpreter and the GPU
# self-check's tests, is most of it.
PYTEST := TRITON_INTERPRET=1 $(BIN)/python -m pytest --durations=5
CORE   := tests/graph tests/ops tests/pe tests/nn
test: $(STAMP)
	@$(BIN)/python -c "from gatlib import native; print('make test:', native.status())"
	@failed=""; \
	echo "== make test 1/3 (the longest): graphs, operators (Triton kernels under the interpreter), encodings, layers =="; \
	$(PYTEST) $(CORE) || failed="$$failed 1"; \
	echo "== make test 2/3: data, utilities, README examples, the slim core =="; \
	$(PYTEST) tests $(addprefix --ignore=,$(CORE)) --ignore=tests/experiments || failed="$$failed 2"; \
	echo "== make test 3/3: the experiments: training runs end to end, the dense-vs-sparse comparison, benchmark scripts =="; \
	$(PYTEST) tests/experiments || failed="$$failed 3"; \
	if [ -n "$$failed" ]; then echo "make test: group(s)$$failed failed"; exit 1; fi; \
	echo "make test: all three groups passed"

# Writes results/bench_gat_{attention,layer}_cpu.{md,json} (git-ignored); the committed figures
# in experiments/results/ are rewritten only with --out. Peak memory about 5.5 GB (PyG's path
# and the reference build [E, H, C] tensors of 2,000,000 edges).
bench: $(STAMP)
	$(BIN)/python experiments/benchmarks/bench_gat.py --what attention && $(BIN)/python experiments/benchmarks/bench_gat.py --what layer

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
