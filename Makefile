# Set-up, demo and tests. `make setup` is idempotent: it only reinstalls when requirements.txt or pyproject.toml
# change. It installs the pinned requirements, then the package itself (editable: the `distillgrasp` command).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.setup-stamp
# System libraries the Python wheels need (open3d loads libusb at import time; Mitsuba's LLVM variant
# needs LLVM 19, Debian 12's default LLVM 15 aborts on it).
APT_PACKAGES := libusb-1.0-0 libgl1 libgomp1 libllvm19

.PHONY: setup demo test clean report-trials

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)

demo: setup
	$(PY) run.py --sim

test: setup
	$(PY) -m pytest -q tests

# The published grasping figures (README): report scene set REPORT_SEED, touched once after every choice was
# made (earlier sets reported earlier releases: see docs/results.md). Development scene sets are 0-8 and,
# since report set 15, 10-13, and the piles of 20 and 21 since report set 23 (they reported earlier releases;
# the failures of sets 16-18 pointed at bottles and at what the rules for them did). About 95 minutes on two
# cores (single picks 35, baselines 17, 60 rounds of piles 45); rerunning resumes where a run stopped.
REPORT_SEED ?= 25

report-trials: setup
	$(PY) -m grasping.trials --sim --depth student,gt --trials 500 --seed $(REPORT_SEED) --workers 2 \
	  --out reports/trials-report
	$(PY) -m grasping.trials --sim --depth raw,fill,teacher --trials 100 --seed $(REPORT_SEED) --workers 2 \
	  --out reports/trials-report-baselines
	$(PY) -m grasping.trials --sim --protocol clutter --scene pile --objects 5 --rounds 60 --seed $(REPORT_SEED) \
	  --depth raw,student,gt --workers 2 --out reports/clutter-report

clean:
	rm -rf $(VENV) .pytest_cache
