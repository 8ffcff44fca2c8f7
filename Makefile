# Every command the README and CI use. `make run` and `make test` set everything up first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
STORE  ?= models/store
PORT   ?= 8000

.PHONY: install run train test lint bench proto clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[train,dev]'
	touch $(STAMP)

# Trains the default family first when the store has none, then serves it on port $(PORT).
run: install
	@test -f $(STORE)/CURRENT || $(BIN)/tiered train --out $(STORE)
	$(BIN)/tiered serve --models $(STORE) --port $(PORT)

train: install
	$(BIN)/tiered train --out $(STORE)

test: install
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: install
	$(BIN)/python -m bench

# After editing app/proto/inference.proto: the descriptor set the gRPC server loads (commit both).
proto: install
	$(BIN)/python -m app.proto

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
