# Two commands do all set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export ANONYMIZED_TELEMETRY := False

.PHONY: run demo test venv clean bench eval

venv: $(STAMP)

$(STAMP): pyproject.toml
	# bubblewrap sandboxes lane commands; install it when missing and we may (root, as in CI).
	command -v bwrap >/dev/null || { [ "$$(id -u)" = 0 ] && (apt-get install -y -q bubblewrap >/dev/null 2>&1 || \
	  (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q bubblewrap >/dev/null 2>&1)) ; } || \
	  echo "bubblewrap unavailable: lanes will run with resource limits only"
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# CPU torch first, so sentence-transformers does not pull a multi-GB CUDA build.
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[test]'
	# Distil the static embedding model from the packaged MiniLM once per machine (~25 s, offline).
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

run: $(STAMP) $(IPYDIR)/profile_default/ipython_kernel_config.py
	$(VENV)/bin/direng index .
ifeq ($(HEADLESS),1)
	mkdir -p $(OUT)
	$(PY) -m papermill notebooks/tour.ipynb $(OUT)/tour.ipynb --cwd notebooks -k python3 --progress-bar
	@echo "tour executed headless: $(abspath $(OUT)/tour.ipynb)"
else
	$(VENV)/bin/jupyter lab $(ALLOW_ROOT) --ServerApp.root_dir=$(CURDIR) notebooks/tour.ipynb
endif

demo: $(STAMP)
	$(VENV)/bin/direng index .
	$(PY) -m direng_kernel.demo .

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) benchmarks/index_bench.py

eval: $(STAMP)
	$(PY) benchmarks/retrieval_eval.py

clean:
	rm -rf $(VENV) .direng
