"""Every notebook runs headless on the quick preset, is stripped of outputs, and matches its py:percent twin."""

import importlib.util
from pathlib import Path

import jupytext
import nbformat
import pytest
from nbclient.exceptions import CellExecutionError

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


@pytest.mark.notebook
@pytest.mark.parametrize("name", SWEEP_NOTEBOOKS)
def test_sweep_notebook_redraws_its_plots_without_training(name, tmp_path, monkeypatch):
    """With REDRAW_ONLY = True a sweep notebook draws from its artefacts and trains nothing: here from the
    committed ones, as after a fresh clone, with an empty folder for whatever it would write."""
    monkeypatch.setenv("PICOLLM_PRESET", "quick")
    monkeypatch.setenv("PICOLLM_ARTEFACTS_DIR", str(tmp_path))
    path = ROOT / "notebooks" / f"{name}.ipynb"
    notebook = nbformat.read(path, as_version=4)
    parameters = next(c for c in notebook.cells if "parameters" in c.metadata.get("tags", []))
    assert "REDRAW_ONLY = False" in parameters.source
    parameters.source = parameters.source.replace("REDRAW_ONLY = False", "REDRAW_ONLY = True")
    execute(notebook, path)
    assert not [artefact for artefact in SWEEP_NOTEBOOKS[name] if (tmp_path / f"{artefact}.json").exists()], \
        "a redraw must not rerun the sweep"
    pngs = [c for c in notebook.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert pngs, "the redraw drew no plot"
