# The two README commands. Each one sets up everything it needs on a fresh machine first
# (tools/setup_env.sh: .venv with pinned deps + interface builds; a no-op when up to date).
SHELL := /bin/bash
VENV  ?= .venv
PY    := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: setup demo test lint typecheck lock clean

setup:
	@bash tools/setup_env.sh

demo: setup  ## the main job: the node on a replayed recording with the shipped model
	@bash tools/demo.sh

test: setup lint typecheck  ## lint, mypy, then the whole test suite (ROS tests on loopback DDS in a leased domain)
	@bash tools/run_tests.sh $(PYTEST_ARGS)

lint: setup
	@$(VENV)/bin/ruff check .

typecheck: setup  ## mypy over the whole imkd_ros package (settings: setup.cfg [mypy])
	@bash tools/typecheck.sh

lock:  ## after editing requirements.in: install it, then pin the resolved set
	$(PY) -m pip install -r requirements.in && bash tools/lock_deps.sh

clean:
	rm -rf build .pytest_cache
