# make demo: set up .venv if needed and run the main job on every installed domain's embedded data; its record
# (each domain's rows and wall time, the commit and the machine) goes to results/demo.json.
# make test: set up .venv if needed and run the whole test suite, one pytest-xdist worker per CPU core (a test module
#   stays on one worker, so its module fixtures are built once); TEST_WORKERS=0 runs it in one process.
# make wheels: build the core and each plugin as wheels into dist/ (and the locally built mmcv into dist/wheelhouse).
VENV ?= .venv
TEST_WORKERS ?= auto
PY := $(VENV)/bin/python

.PHONY: setup demo test wheels bench clean
setup:
	@VENV=$(VENV) bash scripts/setup.sh

demo: setup
	$(VENV)/bin/kdhub demo --work-dir work_dirs/demo --json results/demo.json

test: setup
	KDHUB_PROGRESS=0 $(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadscope

wheels: setup
	$(PY) scripts/build_wheels.py --out dist

bench: setup
	$(PY) benchmarks/core_overhead.py --out results/core_overhead.json
	$(PY) benchmarks/list_startup.py --out results/list_startup.json
	$(PY) benchmarks/graph_reproduce.py --data ../shared/data/npz/cora.npz --out results/graph_reproduce.json
	$(PY) benchmarks/speech_distill.py --labelled 0 100 --out results/speech_distill.json

clean:
	rm -rf work_dirs results
