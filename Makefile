# Runway: `make run` starts the portal with the demo organisation; `make test` runs the whole suite.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PYTHONPATH := platform

.PHONY: run test smoke lint bench venv migrate clean

$(STAMP): requirements.txt requirements-dev.txt
	@command -v $(PYTHON) >/dev/null || { echo "Runway needs $(PYTHON) on PATH (set PYTHON=...)"; exit 1; }
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

venv: $(STAMP)

migrate: $(STAMP)
	$(BIN)/python manage.py migrate --no-input

run: migrate
	LOG_LEVEL=WARNING $(BIN)/python manage.py demo_load
	$(BIN)/python manage.py collectstatic --no-input -v0
	$(BIN)/python manage.py runstack

# --ds: the test settings (fast password hashing) whatever DJANGO_SETTINGS_MODULE the shell exports. The suite runs on
# every core with pytest-xdist (--dist loadfile keeps a module and its module-scoped fixtures in one worker);
# TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= auto
test: $(STAMP)
	$(BIN)/pytest --ds=portal.settings.test -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

smoke: $(STAMP)
	$(BIN)/pytest --ds=portal.settings.test -m smoke $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check platform tests
	$(BIN)/mypy

# Each part prints its figures and writes var/bench/*.json; the target fails if any part missed a target.
bench: $(STAMP)
	@status=0; \
	$(BIN)/python tests/bench/run_bench.py || status=1; \
	$(BIN)/python tests/bench/bench_catalog_as_code.py || status=1; \
	if [ -f tests/bench/bench_scaffold.py ]; then $(BIN)/python tests/bench/bench_scaffold.py || status=1; fi; \
	if [ -f tests/bench/bench_deployments.py ]; then $(BIN)/python tests/bench/bench_deployments.py || status=1; fi; \
	$(BIN)/python tests/bench/bench_safe_delivery.py || status=1; \
	$(BIN)/python tests/bench/bench_insights.py || status=1; \
	$(BIN)/python tests/bench/bench_alertmanager.py || status=1; \
	$(BIN)/python tests/bench/bench_governance.py || status=1; \
	$(BIN)/python tests/bench/bench_flags.py || status=1; \
	$(BIN)/python tests/bench/bench_reviews.py || status=1; \
	$(BIN)/python tests/bench/bench_anomaly.py || status=1; \
	$(BIN)/python tests/bench/bench_detector_state.py || status=1; \
	$(BIN)/python tests/bench/bench_monitoring.py || status=1; \
	$(BIN)/python tests/bench/bench_scorecards.py || status=1; \
	exit $$status

clean:
	rm -rf $(VENV) var
