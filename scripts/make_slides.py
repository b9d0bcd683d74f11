#!/usr/bin/env python3
"""Build the presentation of the studies from the artefacts, training nothing (`make slides`).

artefacts/slides.pdf, 16:9: a title page (the bundle, and the preset, device, commit and date of the
results), a page per figure with what its study found beneath it, and a page of the writer's samples
at several p side by side. A figure whose artefact is missing is left out, with a note here and on the
title page.
"""

from __future__ import annotations

import sys
import time

import picollm_helpers as h


def main() -> int:
    started = time.perf_counter()
    try:
        slides = h.build_slides()
    except h.InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for note in slides.skipped:
        print(f"  left out, for want of its artefact: {note}; `make run` makes it")
    print(f"{slides.pages} pages in {slides.path}, built from the artefacts in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
