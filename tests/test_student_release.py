"""The student's copy of the notebooks (`make student`): every solution replaced by its stub, nothing of a solution
left, and an unfinished exercise stopping at its check with the friendly verdict, not a traceback."""

import importlib.util

import jupytext
import nbformat
import pytest
from nbclient.exceptions import CellExecutionError

from conftest import ROOT


def script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make_student, run_notebooks = script("make_student"), script("run_notebooks")

NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    folder = tmp_path_factory.mktemp("student")
    assert make_student.main(["--output", str(folder)]) == 0
    return folder


def solution_lines(notebook) -> set[str]:
    """Every line of the notebook's solution blocks that appears nowhere else in it."""
    inside, outside, solving = set(), set(), False
    for cell in notebook.cells:
        for line in cell.source.splitlines():
            marker = line.strip()
            if marker in (make_student.BEGIN, make_student.END):
                solving = marker == make_student.BEGIN
            elif marker:
                (inside if solving else outside).add(marker)
    return inside - outside


@pytest.mark.parametrize("source", NOTEBOOKS, ids=lambda path: path.stem)
def test_the_release_keeps_every_cell_but_no_solution(release, source):
    original = nbformat.read(source, as_version=4)
    student = nbformat.read(release / source.name, as_version=4)
    text = "\n".join(cell.source for cell in student.cells)
    assert make_student.BEGIN not in text and make_student.END not in text
    assert not solution_lines(original) & {line.strip() for line in text.splitlines()}, "a solution line is left"
    assert len(student.cells) == len(original.cells)
    assert [cell.source for cell in jupytext.read(release / source.with_suffix(".py").name).cells] == \
        [cell.source for cell in student.cells], "the py:percent twin matches"
    assert not any(cell.get("outputs") for cell in student.cells if cell.cell_type == "code")
    stubs = text.count("raise NotImplementedError(")
    assert stubs == "\n".join(cell.source for cell in original.cells).count(make_student.BEGIN)


def test_each_stub_raises_its_hint():
    source = '''def f(x):
    """Doc."""
    ### BEGIN SOLUTION
    # HINT: square it,
    # then add one
    return x * x + 1
    ### END SOLUTION'''
    stubbed = make_student.strip_solutions(source, "a cell")
    assert stubbed.splitlines()[-1] == '    raise NotImplementedError("square it, then add one")'
    names = {}
    exec(stubbed, names)  # noqa: S102 (the stub just made)
    with pytest.raises(NotImplementedError, match="square it, then add one"):
        names["f"](2)


@pytest.mark.parametrize("source", [f"{make_student.BEGIN}\nx = 1", f"x = 1\n{make_student.END}",
                                    f"{make_student.BEGIN}\n{make_student.BEGIN}\n{make_student.END}"])
def test_unmatched_markers_are_an_error_that_names_the_cell(source):
    with pytest.raises(ValueError, match="cell 3"):
        make_student.strip_solutions(source, "notebook.ipynb, cell 3")


@pytest.mark.notebook
def test_an_unfinished_exercise_stops_at_its_check_with_the_friendly_verdict(release, tmp_path, monkeypatch):
    """Notebook 01 of the release, run headless on the quick preset, stops at the first exercise's check: its
    output is the check's verdict, "not written yet" and the stub's hint, with no traceback, and nothing after
    it runs."""
    monkeypatch.setenv("PICOLLM_PRESET", "quick")
    monkeypatch.setenv("PICOLLM_ARTEFACTS_DIR", str(tmp_path))
    path = release / "01_sanity_check.ipynb"
    notebook = nbformat.read(path, as_version=4)
    with pytest.raises(CellExecutionError):
        run_notebooks.execute_notebook(notebook, path, timeout_s=300)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    failed = next(index for index, cell in enumerate(code) if any(o.output_type == "error" for o in cell.outputs))
    assert code[failed].source == "h.check_count_targets(count_targets)", "it stops at the first check"
    error = next(output for output in code[failed].outputs if output.output_type == "error")
    shown = "\n".join(error.traceback)
    assert error.ename == "ExerciseCheckFailed"
    assert "count_targets: not written yet: position 0 of a sequence is never a target" in shown
    assert "Traceback" not in shown and len(error.traceback) <= 2
    assert all(cell.execution_count is None for cell in code[failed + 1:])
