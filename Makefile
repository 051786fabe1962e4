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
	$(PIP) install -q -c $(CONSTRAINTS) -e '.[test,ratescore]'
	# RaTEScore: PyRuSH (radrl's sentence splitter) and the reference package with medspaCy, which the tests
	# compare against; they pin spaCy < 3.8 and numpy 1.x, so they go in without their pins (docs/metrics.md)
	$(PIP) install -q -c $(CONSTRAINTS) --no-deps PyRuSH==1.0.13 medspacy==1.3.1 medspacy_quickumls==3.2 ratescore==0.6.0
	$(PIP) install -q -c $(CONSTRAINTS) pysbd==0.3.4 jsonschema medspacy_unqlite pysimstring unidecode
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
