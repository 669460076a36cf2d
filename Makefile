# Entry points. Every target sets up .venv first (seconds when nothing changed).
FIXTURE ?= ../shared/fixtures/frereg_unet
OUT ?= out/demo
PY := .venv/bin/python

.PHONY: setup demo test test-fast clean

setup:
	@bash scripts/setup_venv.sh

demo: setup
	@bash scripts/demo.sh "$(FIXTURE)" "$(OUT)"

test: setup
	$(PY) -m pytest -n 2 --dist loadgroup

test-fast: setup
	$(PY) -m pytest -n 2 --dist loadgroup -m "not slow"

clean:
	rm -rf out .pytest_cache
