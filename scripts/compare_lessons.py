#!/usr/bin/env python3
"""Do two runs of the studies teach the same lessons? Each lesson's verdict, effect and noise, side by side.

A lesson is a claim measured once per seed; it holds when its effect is positive and more than twice its
seed-to-seed noise. Run the studies again into another folder, then compare:

    PICOLLM_ARTEFACTS_DIR=/tmp/rerun make run
    python scripts/compare_lessons.py artefacts /tmp/rerun

Lessons are matched by study and by their place in the study's list (a claim's numbers may differ between
runs, its place does not). Exits 1 when a verdict differs, or when a study is missing from the second folder.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import picollm_helpers as h

STUDIES = ("fastest_learner", "own_text", "overfitting", "hyperparameter_rates", "hyperparameters")


def lessons_of(folder: Path, name: str) -> list[dict] | None:
    path = folder / f"{name}.json"
    return h.read_artefact(path)["results"]["lessons"] if path.is_file() else None


def compare(first: Path, second: Path) -> tuple[list[str], int]:
    """A line per lesson of every study in `first`, and how many verdicts `second` does not reproduce."""
    lines, differing = [], 0
    for name in STUDIES:
        before, after = lessons_of(first, name), lessons_of(second, name)
        if before is None:
            continue
        if after is None or len(after) != len(before):
            lines.append(f"{name}: {'missing' if after is None else f'{len(after)} lessons, not {len(before)}'} "
                         f"in {second}")
            differing += 1
            continue
        for old, new in zip(before, after):
            same = old["holds"] == new["holds"]
            differing += not same
            lines.append(f"{'same' if same else 'DIFFERENT'}: {name}: {old['claim']}\n"
                         f"    {h.with_noise(old['measured'], old['noise'])} ({'holds' if old['holds'] else 'not resolved'})"
                         f" -> {h.with_noise(new['measured'], new['noise'])} "
                         f"({'holds' if new['holds'] else 'not resolved'})")
    return lines, differing


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("first", type=Path, help="A folder of study artefacts (the committed ones: artefacts).")
    parser.add_argument("second", type=Path, help="The folder of a rerun's artefacts.")
    args = parser.parse_args(argv)
    lines, differing = compare(args.first, args.second)
    print("\n".join(lines))
    total = sum(line.startswith(("same", "DIFFERENT")) for line in lines)
    print(f"\n{total - differing} of {total} lessons' verdicts reproduced")
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
