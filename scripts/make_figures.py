#!/usr/bin/env python3
"""Redraw every figure of the seven notebooks from the artefacts, training nothing (`make figures`).

Each figure is drawn in the slide style (16:9, text at 14 pt or more) from its artefact, and
saved as PNG and SVG beside it in artefacts/. Restyle a plot (a study's lives with it in
picollm_helpers/studies/, the others in plots.py; the style all share in drawing.py) and run
this to regenerate them all in seconds.
"""

from __future__ import annotations

import sys
import time

import picollm_helpers as h


def main() -> int:
    started = time.perf_counter()
    try:
        saved = h.redraw_figures()
    except h.InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for path in saved:
        print(f"  {path.stem:<24} {path.name}, {path.with_suffix('.svg').name}")
    print(f"{len(saved)} figures redrawn from the artefacts in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
