# localbench — two commands a newcomer needs:
#   make run    create .venv, install requirements.txt, serve http://127.0.0.1:7860
#   make test   the same install plus requirements-dev.txt (and Debian chromium if missing), then pytest
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
ARGS ?=
PYTEST_ARGS ?=
export GRADIO_ANALYTICS_ENABLED := False
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: run test lint install install-dev browser

$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements.txt
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

# llama.cpp's convert_hf_to_gguf.py (the quant lab's HF originals → F16 GGUF): taken once from the
# llama-cpp-python sdist on PyPI into .venv/share/localbench, so later runs work offline (the lab also fetches
# it on first use; the tests take it up front)
$(VENV)/.llama-converter: $(VENV)/.installed
	$(PY) app.py quant --fetch-converter
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev $(VENV)/.llama-converter

# Browser tests drive Debian's chromium through Playwright (no browser download).
browser:
	@test -x /usr/bin/chromium || { command -v apt-get >/dev/null && \
	  (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium) || \
	  echo "warning: /usr/bin/chromium missing — install Debian's chromium for the browser tests"; }

run: $(VENV)/.installed
	$(PY) app.py $(ARGS)

test: $(VENV)/.installed-dev $(VENV)/.llama-converter browser
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .
