#!/usr/bin/env python3
"""Write the student's copy of the notebooks to student/ (what `make student` does).

The notebooks keep each exercise's reference solution between nbgrader's markers, `### BEGIN
SOLUTION` and `### END SOLUTION`, so that they run whole. The student's copy replaces each such
block with nbgrader's stub, a `raise NotImplementedError` whose message is the block's hint (the
`# HINT:` comment just after BEGIN SOLUTION, continued on the comment lines under it). The
signatures, docstrings and check cells stay: a student writes each part, then runs its check.
Every notebook is written as .ipynb, outputs stripped, beside its py:percent twin; Colab opens it
as it opens the bundle's own (its set-up cell installs the bundle). nbgrader is not needed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import jupytext
import nbformat

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS_DIR = ROOT / "notebooks"
BEGIN, END, HINT = "### BEGIN SOLUTION", "### END SOLUTION", "# HINT:"
NO_HINT = "write this part, then run the check below"


def hint_of(solution: list[str]) -> str:
    """The hint of a solution block: its `# HINT:` line and the comment lines that continue it."""
    lines = [line.strip() for line in solution]
    start = next((i for i, line in enumerate(lines) if line.startswith(HINT)), None)
    if start is None:
        return NO_HINT
    words = [lines[start].removeprefix(HINT).strip()]
    for line in lines[start + 1:]:
        if not line.startswith("#"):
            break
        words.append(line.removeprefix("#").strip())
    return " ".join(words)


def stub(indent: str, hint: str) -> list[str]:
    """nbgrader's stub for a solution block, its message the hint."""
    return [f"{indent}# YOUR CODE HERE", f"{indent}raise NotImplementedError({json.dumps(hint, ensure_ascii=False)})"]


def strip_solutions(source: str, where: str) -> str:
    """A cell's source with every solution block replaced by its stub; a ValueError for unmatched markers."""
    kept, solution, indent = [], None, ""
    for number, line in enumerate(source.splitlines(), start=1):
        marker = line.strip()
        if marker == BEGIN:
            if solution is not None:
                raise ValueError(f"{where}, line {number}: {BEGIN} inside another solution block.")
            indent, solution = line[: len(line) - len(line.lstrip())], []
        elif marker == END:
            if solution is None:
                raise ValueError(f"{where}, line {number}: {END} without a {BEGIN} before it.")
            kept += stub(indent, hint_of(solution))
            solution = None
        elif solution is not None:
            solution.append(line)
        else:
            kept.append(line)
    if solution is not None:
        raise ValueError(f"{where}: {BEGIN} without an {END} after it.")
    return "\n".join(kept)


def student_notebook(path: Path):
    """The student's copy of a notebook: solutions stubbed, outputs stripped."""
    notebook = nbformat.read(path, as_version=4)
    for index, cell in enumerate(notebook.cells, start=1):
        if cell.cell_type == "code":
            cell.source = strip_solutions(cell.source, f"{path.name}, cell {index}")
            cell.outputs, cell.execution_count = [], None
    return notebook


def exercises_in(notebook) -> int:
    return sum(cell.source.count("raise NotImplementedError(") for cell in notebook.cells if cell.cell_type == "code")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=ROOT / "student", help="Where to write (default: student/).")
    args = parser.parse_args(argv)
    args.output.mkdir(parents=True, exist_ok=True)
    for path in sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb")):
        notebook = student_notebook(path)
        nbformat.write(notebook, args.output / path.name)
        jupytext.write(notebook, args.output / path.with_suffix(".py").name, fmt="py:percent")
        count = exercises_in(notebook)
        print(f"{args.output / path.name}: " + (f"{count} exercise stubs" if count else "no exercises"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
