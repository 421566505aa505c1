# Two commands: `make demo` and `make test`. Both create .venv and install the project first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build; for CUDA pass e.g. TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed
# The tests also start llama.cpp's OpenAI-compatible server as a real peer. It builds from source
# (about 25 minutes on 2 cores, once: pip keeps the built wheel in its cache), so only `make test` needs it.
TEST_STAMP := $(VENV)/.test-installed

.PHONY: venv demo test unit integration lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet $(TORCH_SPEC)
	$(BIN)/pip install --quiet -e ".[models,dev]"
	touch $(STAMP)

venv: $(STAMP)

$(TEST_STAMP): $(STAMP)
	CMAKE_BUILD_PARALLEL_LEVEL=2 $(BIN)/pip install --quiet -e ".[llamacpp]"
	touch $(TEST_STAMP)

demo: venv
	$(BIN)/cascade demo

test: $(TEST_STAMP)
	$(BIN)/pytest

unit: venv
	$(BIN)/pytest tests/unit

integration: $(TEST_STAMP)
	$(BIN)/pytest tests/integration

lint: venv
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
