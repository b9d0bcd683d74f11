"""Every notebook runs headless on the quick preset, is stripped of outputs, and matches its py:percent twin; then
a rehearsal of `make run PRESET=quick` followed by `make test` reads what they wrote."""

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest
from nbclient.exceptions import CellExecutionError

import picollm_helpers as h
from conftest import ROOT

RUNNER = importlib.util.spec_from_file_location("run_notebooks", ROOT / "scripts" / "run_notebooks.py")
run_notebooks = importlib.util.module_from_spec(RUNNER)
RUNNER.loader.exec_module(run_notebooks)

NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_all_seven_notebooks_exist():
    assert [nb.name[:2] for nb in NOTEBOOKS] == ["01", "02", "03", "04", "05", "06", "07"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stripped_and_paired(path: Path):
    notebook = nbformat.read(path, as_version=4)
    code_cells = [c for c in notebook.cells if c.cell_type == "code"]
    assert not any(c.outputs or c.execution_count for c in code_cells), "outputs must be stripped in git"
    twin = jupytext.read(path.with_suffix(".py"))
    assert [c.source for c in twin.cells] == [c.source for c in notebook.cells], "run `jupytext --sync` on it"
    tagged = [c for c in code_cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "one parameters cell, tagged `parameters`"
    markdown_before_code = all(
        prev.cell_type == "markdown" for prev, cell in zip(notebook.cells, notebook.cells[1:]) if cell.cell_type == "code"
    )
    assert notebook.cells[0].cell_type == "markdown" and markdown_before_code, "a markdown cell before each step"


def execute(notebook, path: Path, kernel_name: str = "python3") -> None:
    try:
        run_notebooks.execute_notebook(notebook, path, timeout_s=600, kernel_name=kernel_name)
    except CellExecutionError as error:
        pytest.fail(f"{path.name} failed:\n{error}")


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_on_quick_preset(path: Path, monkeypatch):
    monkeypatch.setenv("PICOLLM_PRESET", "quick")
    execute(nbformat.read(path, as_version=4), path)


SWEEP_NOTEBOOKS = {"05_custom_data": ["own_text"], "06_overfitting": ["overfitting"],
                   "07_hyperparameter_study": ["hyperparameters"]}


def redraw_only(name: str) -> list:
    """A sweep notebook's cells with REDRAW_ONLY = True, each tagged with the notebook's name."""
    cells = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4).cells
    parameters = next(c for c in cells if "parameters" in c.metadata.get("tags", []))
    assert "REDRAW_ONLY = False" in parameters.source, name
    parameters.source = parameters.source.replace("REDRAW_ONLY = False", "REDRAW_ONLY = True")
    for cell in cells:
        cell.metadata["from_notebook"] = name
    return cells


@pytest.mark.notebook
def test_the_sweep_notebooks_redraw_their_plots_without_training(tmp_path, monkeypatch):
    """With REDRAW_ONLY = True a sweep notebook draws from its artefacts and trains nothing: here from the
    committed ones, as after a fresh clone, with an empty folder for whatever it would write. The three run one
    after another in one kernel, which forgets every name between them (`%reset -f`): only the imports'
    seconds are shared."""
    monkeypatch.setenv("PICOLLM_PRESET", "quick")
    monkeypatch.setenv("PICOLLM_ARTEFACTS_DIR", str(tmp_path))
    cells = []
    for name in SWEEP_NOTEBOOKS:
        if cells:
            cells.append(nbformat.v4.new_code_cell("%reset -f"))
        cells += redraw_only(name)
    notebook = nbformat.v4.new_notebook(cells=cells, metadata=nbformat.read(NOTEBOOKS[0], as_version=4).metadata)
    execute(notebook, ROOT / "notebooks" / "sweep_notebooks_redrawn.ipynb")
    for name, artefacts in SWEEP_NOTEBOOKS.items():
        assert not [artefact for artefact in artefacts if (tmp_path / f"{artefact}.json").exists()], \
            f"{name}: a redraw must not rerun the sweep"
        pngs = [output for cell in notebook.cells if cell.metadata.get("from_notebook") == name
                for output in cell.get("outputs", []) if "image/png" in output.get("data", {})]
        assert pngs, f"{name}: the redraw drew no plot"


QUICK_RUN_ARTEFACTS = Path(os.environ["PICOLLM_ARTEFACTS_DIR"])  # where the notebook tests write theirs
NOT_IN_A_CLONE = shutil.ignore_patterns(".git", ".venv", ".pytest_cache", "__pycache__", "*.egg-info", "checkpoints",
                                        "executed", "slides.pdf")
# The tests that read the committed artefacts (`make figures` and `make slides` are tested on the committed ones).
COMMITTED_ARTEFACT_TESTS = ["tests/test_readme.py", "tests/test_figures.py", "tests/test_slides.py",
                            "-k", "not test_make_"]


def artefacts_the_notebooks_make() -> set[str]:
    """The committed artefacts a run of the notebooks remakes (a benchmark's artefact is not among them)."""
    drawn = {artefact for artefact, _ in h.FIGURES.values()} | {h.WRITER_ARTEFACT}
    return {name for name in drawn if h.read_artefact(h.artefact_path(name, h.BUNDLED_ARTEFACTS_DIR))["preset"]
            in h.RUN_PRESETS}


def quick_run_artefacts(monkeypatch) -> list[Path]:
    """The artefacts the notebooks wrote on the quick preset in this test run, made first if missing."""
    if not all(h.artefact_path(name, QUICK_RUN_ARTEFACTS).is_file() for name in artefacts_the_notebooks_make()):
        monkeypatch.setenv("PICOLLM_PRESET", "quick")
        for path in NOTEBOOKS:
            run_notebooks.execute_notebook(nbformat.read(path, as_version=4), path, timeout_s=600)
    return [path for path in QUICK_RUN_ARTEFACTS.glob("*.json") if (ROOT / "artefacts" / path.name).is_file()
            and json.loads(path.read_text(encoding="utf-8"))["preset"] == "quick"]


def fingerprint(paths) -> str:
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()


def run_in(clone: Path, *command: str) -> subprocess.CompletedProcess:
    """A command in the clone, importing the clone's own bundle, as a new user's checkout would."""
    env = {key: value for key, value in os.environ.items() if key not in ("PICOLLM_ARTEFACTS_DIR", "PICOLLM_PRESET")}
    return subprocess.run(command, cwd=clone, capture_output=True, text=True, timeout=300,
                          env={**env, "PYTHONPATH": str(clone)})


@pytest.mark.notebook
def test_make_run_on_the_quick_preset_then_the_tests_pass(tmp_path, monkeypatch):
    """Regenerating the results leaves a tree whose tests pass: `make run PRESET=quick`, then `make test`.

    `make run` rewrites the artefacts, and a complete run ends by storing the notebooks' times and refreshing
    the README's tables from the artefacts. Executing every notebook again here would cost minutes, so this
    test does the rest of what a new user's `make run PRESET=quick` does, in a copy of the repository: it puts
    in the artefacts the notebooks wrote on the quick preset in this test run (the notebook tests' ones;
    it executes the notebooks first when they have not run), runs the run's own final step
    (`finish_complete_run`), and then the tests that read the committed artefacts: the README check, and the
    figure and slide tests that draw every figure and every page from them (`make figures` and `make slides`
    themselves have their own tests, on the committed artefacts). It proves that a quick run's artefacts and
    the README refreshed from them pass those tests, and that this leaves the tracked README and artefacts as
    they were.
    """
    tracked = fingerprint([ROOT / "README.md", *(ROOT / "artefacts").glob("*.json")])
    clone = tmp_path / "pico-llm"
    shutil.copytree(ROOT, clone, ignore=NOT_IN_A_CLONE)
    quick = quick_run_artefacts(monkeypatch)
    assert {path.stem for path in quick} >= artefacts_the_notebooks_make()
    for path in quick:
        shutil.copy(path, clone / "artefacts")

    seconds = {path.stem: 1.0 for path in NOTEBOOKS}
    finish = run_in(clone, sys.executable, "-c", "import sys; sys.path.insert(0, 'scripts'); import run_notebooks; "
                    f"sys.exit(run_notebooks.finish_complete_run('quick', {seconds!r}, 600))")
    assert finish.returncode == 0, finish.stderr
    assert (clone / "README.md").read_text() != (ROOT / "README.md").read_text(), "the quick run's times are in it"

    tests = run_in(clone, sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *COMMITTED_ARTEFACT_TESTS)
    assert tests.returncode == 0, tests.stdout[-5000:]
    assert fingerprint([ROOT / "README.md", *(ROOT / "artefacts").glob("*.json")]) == tracked
