# The two commands a reader needs: `make book` and `make test`. Both create .venv if missing.

# One BLAS thread: the book's matrices are small, so threads only add contention on a shared
# machine, and a fixed thread count keeps floating-point sums (and so stored outputs) stable.
export OPENBLAS_NUM_THREADS ?= 1
export OMP_NUM_THREADS ?= 1
export MKL_NUM_THREADS ?= 1
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
NBVAL  := --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg
JB     := $(BIN)/jupyter-book build . -n --keep-going

# System packages for the browser tests and the PDF (Debian/Ubuntu, through apt).
APT_PACKAGES := chromium fonts-dejavu-core poppler-utils latexmk texlive-latex-recommended \
                texlive-latex-extra texlive-fonts-recommended tex-gyre

.PHONY: venv system-deps book pdf test unit notebooks build-check browser pdf-check exercises-index benchmark clean

# The virtual environment, with emlib (editable) and everything the book and tests need.
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11 or newer is needed; run make PYTHON=python3.11 ..."'
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[book,test]"
	touch $(STAMP)

venv: $(STAMP)

system-deps:
	@if command -v apt-get >/dev/null; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $(APT_PACKAGES) >/dev/null; \
	else echo "system-deps: apt-get not found; install $(APT_PACKAGES) with your package manager"; exit 1; fi

# Execute every chapter and build the HTML book.
book: $(STAMP)
	$(JB)
	@echo "The book is built: open file://$(CURDIR)/_build/html/index.html"

# Execute every chapter and build the PDF of the whole book (needs `make system-deps`).
pdf: $(STAMP)
	$(JB) --builder pdflatex
	@echo "The PDF is built: $(CURDIR)/_build/latex/em-book.pdf"

# Unit and property tests, every notebook against its stored outputs, a strict HTML build,
# every page in a real browser, and the PDF. Browser and PDF checks are skipped (with the
# reason) where Chromium or LaTeX are missing, except under CI=true.
test: unit notebooks build-check browser pdf-check

unit: $(STAMP)
	$(BIN)/python -m pytest tests -q --ignore=tests/built_book

notebooks: $(STAMP)
	$(BIN)/python -m pytest $(NBVAL) book -q -p no:cacheprovider

build-check: $(STAMP)
	$(JB) -W

browser: $(STAMP)
	$(BIN)/python -m pytest tests/built_book/test_browser.py -q

pdf-check: $(STAMP)
	@if command -v latexmk >/dev/null; then $(JB) --builder pdflatex; \
	 else echo "pdf-check: latexmk not found, the PDF is not built (run make system-deps)"; fi
	$(BIN)/python -m pytest tests/built_book/test_pdf.py -q

# Rewrite book/exercises.md from the exercises in the chapters.
exercises-index: $(STAMP)
	$(BIN)/python tests/built_book/book_sources.py --write-exercises-index

benchmark: $(STAMP)
	$(BIN)/python benchmarks/gmm_vs_sklearn.py

clean:
	rm -rf _build
