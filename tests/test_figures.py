"""`make figures`: every figure of the notebooks redrawn from the committed artefacts, training nothing, in one
slide style (16:9, text at 14 pt or more), saved as PNG and SVG."""

import os
import subprocess
import sys
import time

import matplotlib.pyplot as plt
import matplotlib.text
import pytest

import picollm_helpers as h
from conftest import ROOT

NOTEBOOK_FIGURES = {name for path in (ROOT / "notebooks").glob("0*.py")
                    for name in h.FIGURES if f'show_figure("{name}"' in path.read_text()}


def test_every_figure_a_notebook_shows_is_in_the_registry():
    assert NOTEBOOK_FIGURES == set(h.FIGURES)


def test_make_figures_redraws_them_all_in_under_a_minute_training_nothing(tmp_path):
    started = time.perf_counter()
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "make_figures.py")], capture_output=True, text=True,
                            env={**os.environ, "PICOLLM_ARTEFACTS_DIR": str(tmp_path)}, timeout=120)
    assert result.returncode == 0, result.stderr
    assert time.perf_counter() - started < 60
    for name in h.FIGURES:
        assert (tmp_path / f"{name}.png").stat().st_size > 10_000, name
        assert (tmp_path / f"{name}.svg").read_text().lstrip().startswith("<?xml"), name
    assert not (tmp_path / "checkpoints").exists() and not list(tmp_path.glob("*.json")), "nothing was trained"
    assert result.stderr.strip() == "", "a quiet run"


@pytest.mark.parametrize("name", list(h.FIGURES))
def test_each_figure_is_slide_shaped_with_readable_text(name):
    committed = h.read_artefact(h.artefact_path(h.FIGURES[name][0], h.BUNDLED_ARTEFACTS_DIR))
    figure = h.draw_figure(name, committed)
    width, height = figure.get_size_inches()
    assert width / height == pytest.approx(16 / 9, rel=0.01)
    texts = [text for text in figure.findobj(matplotlib.text.Text) if text.get_text().strip() and text.get_visible()]
    assert texts and min(text.get_fontsize() for text in texts) >= 14
    plt.close(figure)
