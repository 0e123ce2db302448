# Two commands a new user needs (see README.md):
#   make reproduce   execute every notebook on the built-in model and write the figures to figures/
#   make test        unit tests + nbval over every notebook + real-browser widget tests
# Both create .venv when absent. TORCH_SPEC picks the torch build (default: the pinned CPU wheel).

PYTHON     ?= python3
VENV       ?= .venv
TORCH_SPEC ?= -r requirements/ci.txt
BIN        := $(VENV)/bin
STAMP      := $(VENV)/.mmstn-installed
FIGURES    ?= figures
EXECUTED   ?= build/notebooks
NOTEBOOKS  := $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))

.PHONY: reproduce test lab venv browser notebooks lint clean

$(STAMP): pyproject.toml requirements/ci.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade --quiet pip
	$(BIN)/python -m pip install --quiet $(TORCH_SPEC)
	$(BIN)/python -m pip install --quiet -e '.[all]'
	touch $(STAMP)

venv: $(STAMP)

# Debian's Chromium for the browser tests (Playwright's own browser download does not work offline).
browser:
	@if [ -x /usr/bin/chromium ]; then echo "chromium: present"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  || echo "chromium: install failed; browser tests will skip"; \
	else echo "chromium: not installed (sudo apt-get install chromium); browser tests will skip"; fi

reproduce: $(STAMP)
	mkdir -p $(EXECUTED) $(FIGURES)
	MMSTN_FIGURES=$(abspath $(FIGURES)) TQDM_DISABLE=1 $(BIN)/jupyter nbconvert --to notebook --execute \
	  --ExecutePreprocessor.timeout=3600 --ExecutePreprocessor.kernel_name=python3 \
	  --output-dir $(EXECUTED) $(NOTEBOOKS)
	@echo "Executed notebooks: $(EXECUTED)/   Figures: $(FIGURES)/"; ls $(FIGURES)

test: $(STAMP) browser
	MMSTN_SMOKE=1 TQDM_DISABLE=1 MMSTN_FIGURES=$(abspath build/test-figures) $(BIN)/python -m pytest \
	  tests notebooks --nbval-lax --nbval-current-env --nbval-sanitize-with notebooks/nbval_sanitize.cfg \
	  --nbval-cell-timeout=300 --durations=10

# Maintainers: re-execute the committed notebooks in place (full mode), without widget state.
notebooks: $(STAMP)
	TQDM_DISABLE=1 MMSTN_FIGURES=$(abspath build/nb-figures) $(BIN)/jupyter nbconvert --to notebook --execute \
	  --inplace --ExecutePreprocessor.timeout=3600 --ExecutePreprocessor.store_widget_state=False $(NOTEBOOKS)
	$(BIN)/python -c "import sys, nbformat; [nbformat.write((lambda nb: (nb.metadata.pop('widgets', None), nb)[1])(nbformat.read(p, 4)), p) for p in sys.argv[1:]]" $(NOTEBOOKS)

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/

lint: $(STAMP)
	$(BIN)/ruff check mmstn tests benchmarks notebooks

clean:
	rm -rf build figures
