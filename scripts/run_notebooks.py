#!/usr/bin/env python3
"""Execute the numbered notebooks headless, in order, on one preset (what `make run` does).

Each notebook regenerates its artefacts; the executed copy, outputs included, goes to
artefacts/executed/. A failing cell stops the run with that cell's error, not a wall of JSON.
A complete run stores each notebook's time in artefacts/notebook_times_<preset>.json, then
refreshes the README's tables from the artefacts (scripts/update_readme.py), so that the tree a
run leaves behind passes its tests. After an interruption the studies and the writer pick up
what the interrupted run finished (their progress records and checkpoints in
artefacts/checkpoints/); otherwise everything is computed afresh.

Kernels talk to this script over local IPC sockets rather than TCP: nothing leaves the
machine, and ipykernel has no reason to warn about unencrypted TCP.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from traitlets.config import Config

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS_DIR = ROOT / "notebooks"


def execute_notebook(notebook, path: Path, timeout_s: int, kernel_name: str = "python3") -> None:
    """Run every cell of the notebook (in place) in a fresh kernel, in the notebook's folder, over IPC sockets.

    The sockets' names start with an absolute path in a private temporary folder, so that the
    kernel (in the notebook's folder) and this client (wherever it runs) find the same files.
    """
    with tempfile.TemporaryDirectory(prefix="pico-llm-kernel-") as sockets:
        config = Config({"KernelManager": {"transport": "ipc", "ip": str(Path(sockets) / "kernel")}})
        NotebookClient(notebook, timeout=timeout_s, kernel_name=kernel_name, config=config,
                       resources={"metadata": {"path": str(path.parent)}}).execute()


def failing_cell_report(error: CellExecutionError, notebook) -> str:
    """The failing cell's first lines and its error name and message."""
    failed = next((i for i, c in enumerate(notebook.cells) if c.cell_type == "code"
                   and any(o.get("output_type") == "error" for o in c.get("outputs", []))), None)
    where = f"cell {failed + 1}" if failed is not None else "a cell"
    source = notebook.cells[failed].source.splitlines()[:6] if failed is not None else []
    return "\n".join([f"  {where}:", *[f"    {line}" for line in source],
                      f"  {error.ename}: {error.evalue}"])


def run_notebook(path: Path, output_dir: Path, timeout_s: int) -> Path:
    notebook = nbformat.read(path, as_version=4)
    try:
        execute_notebook(notebook, path, timeout_s)
    finally:
        output_dir.mkdir(parents=True, exist_ok=True)
        nbformat.write(notebook, output_dir / path.name)
    return output_dir / path.name


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="cpu", choices=["quick", "cpu", "gpu"])
    parser.add_argument("--timeout", type=int, default=3600, help="Seconds one cell may run.")
    parser.add_argument("names", nargs="*", help="Run only notebooks whose names start with these (e.g. 01 04).")
    args = parser.parse_args(argv)
    os.environ["PICOLLM_PRESET"] = args.preset
    notebooks = sorted(p for p in NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb")
                       if not args.names or any(p.name.startswith(n) for n in args.names))
    output_dir = ROOT / "artefacts" / "executed"
    summary = []
    for index, path in enumerate(notebooks, start=1):
        print(f"[{index}/{len(notebooks)}] {path.stem} (preset {args.preset}) ...", flush=True)
        started = time.perf_counter()
        try:
            executed = run_notebook(path, output_dir, args.timeout)
        except CellExecutionError as error:
            notebook = nbformat.read(output_dir / path.name, as_version=4)
            print(f"FAILED: {path.name}\n{failing_cell_report(error, notebook)}\n"
                  f"  the executed copy, with the traceback, is {(output_dir / path.name).relative_to(ROOT)}",
                  file=sys.stderr)
            return 1
        seconds = time.perf_counter() - started
        summary.append((path.stem, seconds, executed.relative_to(ROOT)))
        print(f"    done in {seconds:.1f} s -> {executed.relative_to(ROOT)}", flush=True)
    print(f"\nSummary (preset {args.preset}):")
    for name, seconds, executed in summary:
        print(f"  {name:<32} {seconds:7.1f} s   {executed}")
    print(f"  {'total':<32} {sum(s for _, s, _ in summary):7.1f} s   artefacts in "
          f"{os.environ.get('PICOLLM_ARTEFACTS_DIR') or 'artefacts/'}")
    if not args.names:
        return finish_complete_run(args.preset, {name: seconds for name, seconds, _ in summary}, args.timeout)
    return 0


def finish_complete_run(preset: str, seconds: dict[str, float], timeout_s: int) -> int:
    """What a complete run ends with: each notebook's time stored, then the README's tables refreshed from
    the artefacts, which the run has just rewritten (a test checks that the README matches them)."""
    record_times(preset, seconds, timeout_s)
    refreshed = subprocess.run([sys.executable, str(ROOT / "scripts" / "update_readme.py")])
    if refreshed.returncode != 0:
        print("FAILED: refreshing the README from the artefacts (scripts/update_readme.py)", file=sys.stderr)
        return 1
    print("  README.md refreshed from the artefacts")
    return 0


def record_times(preset: str, seconds: dict[str, float], timeout_s: int) -> None:
    """Store the measured time of each notebook of a complete run, with its provenance."""
    import picollm_helpers as h

    path = h.write_artefact(
        f"notebook_times_{preset}", preset=preset, device=h.pick_device(),
        config={"command": f"make run PRESET={preset}", "cell_timeout_s": timeout_s},
        results={"seconds": {name: round(taken, 1) for name, taken in seconds.items()},
                 "total_s": round(sum(seconds.values()), 1)})
    print(f"  times stored in {path}")


if __name__ == "__main__":
    sys.exit(main())
