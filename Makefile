# The two commands a reader needs: `make book` and `make test`. Both create .venv if missing.

# One BLAS thread: the book's matrices are small, so threads only add contention on a shared
# machine, and a fixed thread count keeps floating-point sums (and so stored outputs) stable.
export OPENBLAS_NUM_THREADS ?= 1
export OMP_NUM_THREADS ?= 1
export MKL_NUM_THREADS ?= 1
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
LOCK   := requirements-lock.txt
# Two stamps: a reader who only builds the book gets the book extra; the tests add the test extra.
BOOK_STAMP := $(VENV)/.book-stamp
TEST_STAMP := $(VENV)/.test-stamp
PIP    := $(BIN)/python -m pip install --quiet --constraint $(LOCK)
NBVAL  := --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg
JB     := $(BIN)/jupyter-book build . -n --keep-going
CHAPTERS ?= $(wildcard book/*.ipynb)

# System packages for the browser tests and the PDF (Debian/Ubuntu, through apt).
APT_PACKAGES := chromium fonts-dejavu-core poppler-utils latexmk texlive-latex-recommended \
                texlive-latex-extra texlive-fonts-recommended tex-gyre

.PHONY: venv venv-book system-deps book pdf test unit fuzz notebooks reproducible build-check downloaded \
        browser pdf-check problems execute survey lock launch-cells exercises-index benchmark clean

# The virtual environment: emlib (editable) and the pinned versions of requirements-lock.txt.
$(BOOK_STAMP): pyproject.toml $(LOCK)
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11 or newer is needed; run make PYTHON=python3.11 ..."'
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(PIP) -e ".[book]"
	touch $(BOOK_STAMP)

$(TEST_STAMP): $(BOOK_STAMP)
	$(PIP) -e ".[book,test]"
	touch $(TEST_STAMP)

venv: $(TEST_STAMP)

venv-book: $(BOOK_STAMP)

system-deps:
	@if command -v apt-get >/dev/null; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $(APT_PACKAGES) >/dev/null; \
	else echo "system-deps: apt-get not found; install $(APT_PACKAGES) with your package manager"; exit 1; fi

# Execute every chapter and build the HTML book.
book: $(BOOK_STAMP)
	@echo "Executing the chapters and building the HTML book (a few minutes the first time) ..."
	$(JB) -q
	@echo "The book is built: open file://$(CURDIR)/_build/html/index.html"

# Execute every chapter and build the PDF of the whole book (needs `make system-deps`).
pdf: $(BOOK_STAMP)
	$(JB) -q --builder pdflatex
	@echo "The PDF is built: $(CURDIR)/_build/latex/em-book.pdf"

# The problem set for instructors: every exercise of the book, no solutions (needs system-deps).
problems: $(BOOK_STAMP)
	EMBOOK_PROBLEMS=1 $(JB) -q --builder pdflatex --path-output _build/problems
	@echo "The problem set is built: $(CURDIR)/_build/problems/_build/latex/em-book-problems.pdf"

# Unit and property tests, every notebook against its stored outputs, a strict HTML build,
# every page in a real browser, and the PDF. Browser and PDF checks are skipped (with the
# reason) where Chromium or LaTeX are missing, except under CI=true.
test: unit notebooks reproducible build-check downloaded browser pdf-check

unit: $(TEST_STAMP)
	$(BIN)/python -m pytest tests -q --ignore=tests/built_book

# The property tests (hypothesis) with fresh random examples on every run, where `make unit`
# replays the same derandomized ones: the profile "fuzz" of tests/conftest.py.
fuzz: $(TEST_STAMP)
	HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest tests -q --ignore=tests/built_book -m hypothesis -p no:cacheprovider

notebooks: $(TEST_STAMP)
	$(BIN)/python -m pytest $(NBVAL) book -q -p no:cacheprovider

# nbval again under another numerical environment (OpenBLAS kernel, SIMD level, thread count):
# a stored output that moves with the last bits fails here. See book/_ext/reproducibility.py.
reproducible: $(TEST_STAMP)
	$(BIN)/python book/_ext/reproducibility.py nbval $(CHAPTERS) -q

build-check: $(TEST_STAMP)
	$(JB) -W

# Every chapter as a reader downloads it from the built site, executed in a fresh virtual
# environment that holds only the wheel of this repository and the chapters' dependencies.
downloaded: $(TEST_STAMP)
	$(BIN)/python -m pytest tests/built_book/test_downloaded_notebooks.py -q

browser: $(TEST_STAMP)
	$(BIN)/python -m pytest tests/built_book/test_browser.py tests/built_book/test_jupyterlab.py -q

pdf-check: $(TEST_STAMP)
	@if command -v latexmk >/dev/null; then $(JB) -q --builder pdflatex; \
	 else echo "pdf-check: latexmk not found, the PDF is not built (run make system-deps)"; fi
	$(BIN)/python -m pytest tests/built_book/test_pdf.py tests/built_book/test_numbering.py -q

# Re-execute chapters in place (all, or CHAPTERS="book/a.ipynb book/b.ipynb"), storing the outputs
# that nbval compares and the values of the prose's {eval} roles. Run it after changing a chapter
# or emlib.
execute: $(TEST_STAMP)
	$(BIN)/python book/_ext/inline_values.py $(CHAPTERS)

# Execute chapters under five numerical environments and print every output that differs.
survey: $(TEST_STAMP)
	$(BIN)/python book/_ext/reproducibility.py survey $(CHAPTERS)

# Refresh the lock file to the newest versions the bounds in pyproject.toml allow, reinstall,
# and re-execute every chapter (numpy's random streams and other libraries' outputs may change).
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet --upgrade pip
	.lock-venv/bin/python -m pip install --quiet ".[book,test]"
	{ echo "# Exact versions of every package of the book and its tests (Python 3.11, Linux)."; \
	  echo "# Used as constraints by make venv and CI, and as requirements by environment.yml"; \
	  echo "# (conda and Binder). Regenerate with make lock, which also re-executes the chapters."; \
	  .lock-venv/bin/python -m pip freeze --exclude emlib-book; } > $(LOCK)
	rm -rf .lock-venv
	$(MAKE) venv execute

# Insert or refresh every chapter's hidden first cell, which installs emlib outside the book's
# environment from the repository named in _config.yml (see book/_ext/launch_cell.py).
launch-cells: $(TEST_STAMP)
	$(BIN)/python book/_ext/launch_cell.py --write

# Rewrite book/exercises.md from the exercises in the chapters.
exercises-index: $(TEST_STAMP)
	$(BIN)/python book/_ext/book_sources.py --write-exercises-index

benchmark: $(TEST_STAMP)
	$(BIN)/python benchmarks/gmm_vs_sklearn.py

clean:
	rm -rf _build dist
