# The course's commands. `make book` and `make test` are all a newcomer needs; README.md lists the rest.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# nbgrader and jupyter-book run `alembic` and `jupyter` from PATH
WITH_VENV := PATH=$(CURDIR)/$(BIN):$$PATH
# make bench N=...: the class size to grade
N ?= 40
# make bench REPEATS=...: rounds of the three gradings (medians reported); BOOK=no: time the grading only
REPEATS ?= 3
BOOK ?= yes
# make test-quick grades a class of this assignment only
QUICK_ASSIGNMENT ?= 03_multi_head_attention
# make lab EDITION=zh: the 简体中文 edition's notebooks (en: English)
EDITION ?= en
# make test runs on this many pytest-xdist workers (auto: one per core; 0: in one process)
TEST_WORKERS ?= auto

.PHONY: book translations cjk-font test test-quick typecheck notebooks readme lab lab-instructor hub proxy check-submission student-edition bench chromium sandbox bubblewrap clean

# PyTorch's CPU wheel index: requirements.txt pins torch's CPU build (torch==X+cpu), which only it serves.
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu

# The virtual environment, rebuilt when requirements.txt or pyproject.toml changes. torch without its dependencies:
# from a wheel that pip's configuration already finds (a local wheelhouse; PyPI's on macOS), else from PyTorch's CPU
# index. Only torch is looked up there: an index that cannot be reached costs pip about 8 s of retries per package,
# 78 s for torch and its nine dependencies. Beside it, the rest, dependencies included, from PyPI (nothing else
# depends on torch). Neither pip byte-compiles: compileall then compiles the whole environment on every core (pip
# compiles file by file, on one). A file that is not Python 3.11 (torch ships py312_intrinsics.py) fails to compile
# and is never imported, as under pip. On 2 cores, one after the other: 83 s, against 112 s with pip alone (which took
# 74 to 116 s that hour). Then the grader, in editable mode, so that Dask's scheduler and workers import it from any
# folder.
PIP_INSTALL := $(BIN)/python -m pip install --quiet --disable-pip-version-check --no-compile
$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	{ $(PIP_INSTALL) --no-deps -r <(grep '^torch==' requirements.txt) 2>/dev/null \
	  || $(PIP_INSTALL) --no-deps --extra-index-url $(TORCH_INDEX) -r <(grep '^torch==' requirements.txt); } & torch=$$!; \
	$(PIP_INSTALL) -r <(grep -v '^torch==' requirements.txt); rest=$$?; \
	wait $$torch && [ $$rest = 0 ]
	$(BIN)/python -m compileall -q -j 0 $(VENV)/lib >/dev/null || true
	$(PIP_INSTALL) --no-deps --no-build-isolation -e .
	# matplotlib's font cache (~/.cache/matplotlib), built anew: one written while a venv at the same path was being
	# removed lists none of matplotlib's own fonts, and every chapter then warns on stderr (the book fails)
	MPLBACKEND=Agg $(BIN)/python -c "from matplotlib import font_manager; font_manager._load_fontmanager(try_read_cache=False)"
	touch $(STAMP)

# The HTML book in _build/html; fails on any Sphinx warning or cell error. Execution is cached. One torch
# thread per chapter: on a busy 2-core machine two threads are many times slower, and figures are steadier.
# Then the Chinese edition (tools/zh_book.py) into _build/html/zh/, from the same execution: the chapters' kernels
# start with book/_kernel/figures_for_editions.py (IPython's startup folder in _build/ipython), which keeps each
# figure for the Chinese edition to draw again with Chinese labels, in Debian's CJK font fonts-wqy-microhei.
KERNEL_STARTUP := _build/ipython/profile_default/startup
book: $(STAMP) cjk-font
	mkdir -p $(KERNEL_STARTUP) && cp book/_kernel/figures_for_editions.py $(KERNEL_STARTUP)/
	$(WITH_VENV) IPYTHONDIR=$(CURDIR)/_build/ipython OMP_NUM_THREADS=1 $(BIN)/jupyter-book build . --builder html -W -n --keep-going
	$(WITH_VENV) $(BIN)/python -m tools.zh_book

# The 简体中文 edition's units (zh/) that are missing, stale or mistranslated against their English (tools/translations.py).
translations: $(STAMP)
	$(BIN)/python -m tools.translations

# Every test of the project, on TEST_WORKERS pytest-xdist workers (one per core by default; tests that share a
# fixture share a worker: tests/conftest.py). The book (`make book`) builds in the background from the start of
# the run, beside the tests, when a test that needs it is collected; its tests wait for it.
test: $(STAMP) chromium sandbox proxy
	$(WITH_VENV) $(BIN)/python -m pytest -n $(TEST_WORKERS)

# The edit loop: unit tests and one graded class of one assignment (pytest -m quick), about 40 s on 2 cores.
# Needs neither the book nor a browser. `make test` stays the full check.
test-quick: $(STAMP) sandbox
	$(WITH_VENV) TEST_ASSIGNMENTS=$(QUICK_ASSIGNMENT) $(BIN)/python -m pytest -n $(TEST_WORKERS) -m "quick or unit" -q

# mypy --strict on autograder/ and tools/ (pyproject.toml's [tool.mypy]; cache in _build/mypy); make test runs it too (tests/test_types.py).
typecheck: $(STAMP)
	$(BIN)/python -m mypy --config-file pyproject.toml

# notebooks/ regenerated from solutions/ by nbgrader in a scratch folder; notebooks/ changes only on success.
notebooks: $(STAMP)
	$(WITH_VENV) $(BIN)/python -m tools.notebooks

# README.md's table of chapters, assignments and points, generated from _toc.yml and solutions/.
readme: $(STAMP)
	$(BIN)/python -m tools.readme

# The student's JupyterLab on work/ (released notebooks copied in, never overwritten), with Validate and
# none of nbgrader's instructor tools (jupyter/student/). JUPYTER_PORT and JUPYTER_TOKEN are honoured;
# LAB_ARGS go to JupyterLab (in a container, say: make lab LAB_ARGS="--ip=0.0.0.0 --no-browser").
# EDITION=zh: the Chinese edition's notebooks (zh/notebooks/), in work/zh/.
lab: $(STAMP)
	$(BIN)/python -m tools.lab student --edition $(EDITION) -- $(LAB_ARGS)

# The instructor's JupyterLab, opened on solutions/, with Create Assignment and the Formgrader (jupyter/instructor/).
lab-instructor: $(STAMP)
	$(BIN)/python -m tools.lab instructor -- $(LAB_ARGS)

# The class hub (tools/hub.py): JupyterHub for the course on this machine, run as root; students are the Linux accounts
# of the group attention-students (PAM), the exchange nbgrader's /srv/nbgrader/exchange. HUB_ARGS go to
# `python -m tools.hub serve` (--port, --group, --exchange, --python, --config: README, a class hub on one machine).
hub: $(STAMP) proxy
	$(WITH_VENV) $(BIN)/python -m tools.hub serve $(HUB_ARGS)

# JupyterHub's proxy, configurable-http-proxy (pinned in tools/hub.py), from npm into _build/configurable-http-proxy/.
proxy: $(STAMP)
	@$(BIN)/python -m tools.hub proxy >/dev/null || echo "WARNING: could not install configurable-http-proxy; the hub's test will be SKIPPED."

# Check a notebook before handing it in, as the grader will (no hidden tests): NB=path, or every work/<id>/<id>.ipynb.
check-submission: $(STAMP)
	$(WITH_VENV) $(BIN)/python -m tools.check_submission $(NB)

# What the students get (tools/student_edition.py), in _build/student-edition/: the built book's HTML, both editions, and
# the student repository (a folder and a .tar.gz) without solutions or hidden tests, each file searched for them.
# BOOK_URL=...: where the HTML will be published (the student README links it).
student-edition: book
	$(BIN)/python -m tools.student_edition --html _build/html --out _build/student-edition $(if $(BOOK_URL),--book-url "$(BOOK_URL)")

# Timings: book build, no-change rebuild, grading a class of N submissions with 1 worker (forked and fresh kernels) and every core, REPEATS
# rounds. The README's table: make bench N=12 REPEATS=3 BOOK=no.
bench: $(STAMP)
	$(WITH_VENV) $(BIN)/python tests/bench.py --copies $(N) --repeats $(REPEATS) $(if $(filter no,$(BOOK)),--skip-book)

# A CJK font for the Chinese edition's figures (Debian's fonts-wqy-microhei, 4 MB).
cjk-font:
	@fc-list 2>/dev/null | grep -qi "wqy\|noto sans cjk" || { \
	  echo "Installing Debian's fonts-wqy-microhei for the Chinese edition's figures..."; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-wqy-microhei) >/dev/null 2>&1 \
	  || echo "WARNING: could not install fonts-wqy-microhei; the Chinese edition will not build."; }

# Debian's Chromium for the browser tests (book, JupyterLab); they are skipped loudly if it cannot be installed.
chromium:
	@command -v chromium >/dev/null || { \
	  echo "Installing Debian's chromium for the browser tests..."; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1 \
	  || echo "WARNING: could not install chromium; the browser tests will be SKIPPED."; }

# The grader's sandbox: Debian's bubblewrap, util-linux's setpriv and prlimit, and (run as root) the account
# autograder-sandbox that student code runs as when the grader is root (no home, no shell, owns no file).
SANDBOX_ACCOUNT := autograder-sandbox
sandbox:
	@command -v bwrap >/dev/null && command -v setpriv >/dev/null || { \
	  echo "Installing Debian's bubblewrap and util-linux for the grader's sandbox..."; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap util-linux) >/dev/null 2>&1 \
	  || echo "WARNING: could not install bubblewrap; the grader will refuse to run (see README)."; }
	@if [ "$$(id -u)" = 0 ] && ! id $(SANDBOX_ACCOUNT) >/dev/null 2>&1; then \
	  echo "Creating the account $(SANDBOX_ACCOUNT) that student code runs as..."; \
	  useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin $(SANDBOX_ACCOUNT); fi

bubblewrap: sandbox

# Everything built: the book, its execution cache, scratch gradebooks, the instructor's JupyterLab state, mypy's cache.
# Never work/ (the student's notebooks) nor .venv/.
clean:
	rm -rf _build
