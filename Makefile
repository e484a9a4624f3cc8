# Two commands for a newcomer: `make run` (the whole local stack) and `make test` (everything the tests need, then all tests).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
export TIKTOKEN_CACHE_DIR ?= $(CURDIR)/.cache/tiktoken
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: run test bench install install-dev tiktoken chromium test-packages clean

run: install tiktoken
	@$(PY) -m localdev.stack

test: install-dev tiktoken test-packages
	$(PY) -m pytest

bench: install-dev tiktoken chromium
	$(PY) -m bench.report

install: $(VENV)/.installed-localdev
install-dev: $(VENV)/.installed-dev

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

tiktoken: | $(PY)
	@$(PY) scripts/provision_tiktoken.py "$(TIKTOKEN_CACHE_DIR)"

chromium:
	@scripts/apt_install.sh chromium

# Debian's chromium (browser tests) and postgresql (the Postgres store tests run a throwaway server).
test-packages:
	@scripts/apt_install.sh chromium postgresql

clean:
	rm -rf $(VENV) .cache .pytest_cache
