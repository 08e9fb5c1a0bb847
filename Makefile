# The two entry points of the README's quick start, plus the pieces of `check`.
# Needs only python3 (3.11+): uv is installed with pip on first use.

UV := $(shell command -v uv 2>/dev/null)
ifeq ($(UV),)
UV := python3 -m uv
endif

.PHONY: run chat check lint typecheck test bench setup

setup:
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet uv \
		|| python3 -m pip install --quiet --user --break-system-packages uv
	@$(UV) sync --locked --quiet

run: setup  ## start opsloop on its embedded defaults: API, console, worker, scheduler
	$(UV) run opsloop run

chat: setup  ## chat in the terminal instead
	$(UV) run opsloop chat

lint: setup
	$(UV) run ruff check .
	$(UV) run ruff format --check .

typecheck: setup
	$(UV) run mypy

test: setup
	$(UV) run pytest --cov --cov-report=term:skip-covered --cov-fail-under=85

check: lint typecheck test  ## everything CI runs

# Each needs PostgreSQL on 127.0.0.1 (service.py Redis too); the bench group adds LangGraph.
BENCHMARKS := step_overhead vs_langgraph paused_threads long_thread service tool_sources

bench: setup  ## every benchmark in benchmarks/, one after another
	@set -e; for name in $(BENCHMARKS); do \
		echo "== benchmarks/$$name.py"; \
		$(UV) run --group bench python benchmarks/$$name.py; \
	done
