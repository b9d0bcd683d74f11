# Quick start: `make run` executes every notebook headless (PRESET=cpu by default; PRESET=quick
# for a smoke run; after an interruption it picks up what the studies finished) and
# regenerates artefacts/ and what is drawn from them; `make figures` redraws every figure from the
# artefacts; `make slides` builds artefacts/slides.pdf from them; `make test` runs the test suite;
# `make lab` opens JupyterLab; `make student` writes the student's copy of the notebooks to student/,
# each exercise's solution replaced by a stub with a hint. Each creates .venv on first use, with the
# bundle installed in it in editable mode.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The CPU build of torch; an existing torch in the environment is kept as it is.
TORCH_SPEC ?= torch==2.13.0
PRESET ?= cpu

.PHONY: setup run figures slides test lab student clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet --no-compile $(TORCH_SPEC)
	$(PY) -m pip install --quiet --no-compile -r requirements-dev.txt
	@# pip byte-compiles one file at a time; this does it on every core. Like pip, it skips a file
	@# written for a newer Python (such files make compileall's status 1).
	$(PY) -m compileall -qq -j0 $(VENV)/lib || true
	touch $@

run: setup
	$(PY) scripts/run_notebooks.py --preset $(PRESET)

figures: setup
	$(PY) scripts/make_figures.py

slides: setup
	$(PY) scripts/make_slides.py

test: setup
	$(PY) -m pytest

lab: setup
	$(VENV)/bin/jupyter lab notebooks/

student: setup
	$(PY) scripts/make_student.py

clean:
	rm -rf $(VENV) .pytest_cache
