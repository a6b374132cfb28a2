# The two commands a reader needs: `make book` and `make test`. Both create .venv if missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
NBVAL  := --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg
JB     := $(BIN)/jupyter-book build . -n --keep-going

.PHONY: venv book test unit notebooks build-check benchmark clean

# The virtual environment, with emlib (editable) and everything the book and tests need.
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11 or newer is needed; run make PYTHON=python3.11 ..."'
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[book,test]"
	touch $(STAMP)

venv: $(STAMP)

# Execute every chapter and build the HTML book.
book: $(STAMP)
	$(JB)
	@echo "The book is built: open file://$(CURDIR)/_build/html/index.html"

# Unit and property tests, every notebook against its stored outputs, and a strict book build.
test: unit notebooks build-check

unit: $(STAMP)
	$(BIN)/python -m pytest tests -q

notebooks: $(STAMP)
	$(BIN)/python -m pytest $(NBVAL) book -q -p no:cacheprovider

build-check: $(STAMP)
	$(JB) -W

benchmark: $(STAMP)
	$(BIN)/python benchmarks/gmm_vs_sklearn.py

clean:
	rm -rf _build
