# infntk — the two commands a fresh machine needs are `make demo` and `make test`.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
NT_VENV := .venv-nt
NT_PY   := $(NT_VENV)/bin/python
NT_STAMP := $(NT_VENV)/.installed

.PHONY: demo test test-full bench crosscheck validate clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/infntk demo

test: $(STAMP)
	$(PY) -m pytest -q -n auto --dist loadfile tests

test-full: $(STAMP)
	INFNTK_FULL=1 $(PY) -m pytest -q -n auto --dist loadfile tests

# The pinned peer environment: neural-tangents 0.6.5 only runs on old JAX.
$(NT_STAMP): pyproject.toml crosscheck/requirements.txt
	$(PYTHON) -m venv $(NT_VENV)
	$(NT_PY) -m pip install -q --upgrade pip
	$(NT_PY) -m pip install -q -r crosscheck/requirements.txt
	$(NT_PY) -m pip install -q --no-deps -e .
	touch $(NT_STAMP)

crosscheck: $(NT_STAMP)
	$(NT_PY) -m pytest -q -p no:cacheprovider -n 2 crosscheck/tests

bench: $(STAMP) $(NT_STAMP)
	$(PY) -m benchmarks.run
	$(PY) -m benchmarks.duals

validate: $(STAMP)
	$(PY) -m validation run all

clean:
	rm -rf $(VENV) $(NT_VENV) .pytest_cache .hypothesis
