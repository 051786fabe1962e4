# make demo: virtual environment + install + the CPU demo (report in runs/demo/report.md)
# make test: virtual environment + install + lint (ruff, rules in pyproject.toml) + the tests
# make lint: lint only
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
CONSTRAINTS ?= constraints/cpu.txt
STAMP := $(VENV)/.installed

.PHONY: demo test lint install clean

$(STAMP): pyproject.toml $(CONSTRAINTS)
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -c $(CONSTRAINTS) -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/radrl demo --out runs/demo

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench

test: lint
	$(PY) -m pytest -q tests --doctest-modules src/radrl

clean:
	rm -rf $(VENV) runs
