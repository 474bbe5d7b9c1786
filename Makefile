# The course's commands. `make book` and `make test` are all a newcomer needs (see README.md).
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: book test notebooks lab lab-instructor check-submission bench chromium bubblewrap clean

# The virtual environment, rebuilt when requirements.txt changes.
$(STAMP): requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	MPLBACKEND=Agg $(BIN)/python -c "import matplotlib.pyplot"  # build matplotlib's font cache once, quietly
	touch $(STAMP)

# The HTML book in _build/html; fails on any Sphinx warning or cell error. Execution is cached.
book: $(STAMP)
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/jupyter-book build . --builder html -W -n --keep-going

# Every test of the project (builds the book first: the book's tests read _build/html).
test: $(STAMP) book chromium bubblewrap
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m pytest

# notebooks/ regenerated from solutions/ by nbgrader (configuration: nbgrader_config.py).
notebooks: $(STAMP)
	for id in $$(ls solutions); do \
	  PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/nbgrader generate_assignment "$$id" --force || exit 1; \
	done

# The student's JupyterLab on work/ (released notebooks copied in, never overwritten), with Validate and
# none of nbgrader's instructor tools (jupyter/student/). JUPYTER_PORT and JUPYTER_TOKEN are honoured.
lab: $(STAMP)
	$(BIN)/python -m tools.lab student

# Check a notebook before handing it in, as the grader will (no hidden tests): NB=path, or every work/<id>/<id>.ipynb.
check-submission: $(STAMP)
	$(BIN)/python -m tools.check_submission $(NB)

# The instructor's JupyterLab, opened on solutions/, with Create Assignment and the Formgrader (jupyter/instructor/).
lab-instructor: $(STAMP)
	$(BIN)/python -m tools.lab instructor

# Timings: book build, no-change rebuild, grading per submission with 1 and 2 workers.
bench: $(STAMP)
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python tests/bench.py

# Debian's Chromium for the book's browser test; the test skips loudly if it cannot be installed.
chromium:
	@command -v chromium >/dev/null || { \
	  echo "Installing Debian's chromium for the book's browser test..."; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1 \
	  || echo "WARNING: could not install chromium; the browser test of the book will be SKIPPED."; }

# Debian's bubblewrap: the grader runs every student notebook in its sandbox.
bubblewrap:
	@command -v bwrap >/dev/null || { \
	  echo "Installing Debian's bubblewrap for the grader's sandbox..."; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap) >/dev/null 2>&1 \
	  || echo "WARNING: could not install bubblewrap; the grader will refuse to run (see README)."; }

clean:
	rm -rf _build
