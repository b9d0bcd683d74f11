"""`make figures`: every figure of the notebooks redrawn from the committed artefacts, training nothing, in one
slide style (16:9, text at 14 pt or more, every text inside the canvas and clear of the others), saved as PNG
and SVG."""

import matplotlib.pyplot as plt
import matplotlib.text
import pytest

import picollm_helpers as h
from conftest import ROOT, run_script_on_an_empty_artefacts_folder

NOTEBOOK_FIGURES = {name for path in (ROOT / "notebooks").glob("0*.py")
                    for name in h.FIGURES if f'show_figure("{name}"' in path.read_text()}


def test_every_figure_a_notebook_shows_is_in_the_registry():
    assert NOTEBOOK_FIGURES == set(h.FIGURES)


def test_make_figures_redraws_them_all_in_under_a_minute_training_nothing(tmp_path):
    result, seconds = run_script_on_an_empty_artefacts_folder("make_figures.py", tmp_path)
    assert result.returncode == 0, result.stderr
    assert seconds < 60
    for name in h.FIGURES:
        assert (tmp_path / f"{name}.png").stat().st_size > 10_000, name
        assert (tmp_path / f"{name}.svg").read_text().lstrip().startswith("<?xml"), name
    assert not (tmp_path / "checkpoints").exists() and not list(tmp_path.glob("*.json")), "nothing was trained"
    assert result.stderr.strip() == "", "a quiet run"


def committed_artefact(figure_name: str) -> dict:
    return h.read_artefact(h.artefact_path(h.FIGURES[figure_name][0], h.BUNDLED_ARTEFACTS_DIR))


@pytest.mark.parametrize("name", list(h.FIGURES))
def test_each_figure_is_slide_shaped_with_readable_text_that_fits(name):
    """16:9, text at 14 pt or more, and from the renderer's text extents: no text leaves the canvas, and no two
    texts overlap (a legend counts as one text, its frame; tick labels of one axis may crowd each other)."""
    figure = h.draw_figure(name, committed_artefact(name))
    width, height = figure.get_size_inches()
    texts = [text for text in figure.findobj(matplotlib.text.Text) if text.get_text().strip() and text.get_visible()]
    problems = h.text_fit_problems(figure)
    plt.close(figure)
    assert width / height == pytest.approx(16 / 9, rel=0.01)
    assert texts and min(text.get_fontsize() for text in texts) >= 14
    assert not problems, f"{name} ({h.FIGURES[name][1].__name__} in {h.FIGURES[name][1].__module__}):\n  " + \
        "\n  ".join(problems)


def test_the_fit_check_finds_overlapping_and_clipped_text():
    figure, (left, right) = plt.subplots(1, 2, figsize=h.SLIDE_SIZE)
    left.set_ylabel("a label far too long for its axes " * 4)
    left.text(0.5, 0.5, "here", transform=left.transAxes)
    left.text(0.5, 0.5, "and here", transform=left.transAxes)
    right.plot([0, 1], label="a line")
    right.legend(loc="center")
    right.set_title("clear of everything")
    right.set_xticks([0.5, 0.501], ["crowded tick", "labels of one axis"])
    right.set_xticks([2.0], ["a tick outside the view"], minor=True)
    right.set_xlim(0.0, 1.0)
    problems = h.text_fit_problems(figure)
    plt.close(figure)
    assert any("far too long" in problem and "leaves the canvas" in problem for problem in problems)
    assert any("'here' overlaps 'and here'" in problem for problem in problems)
    assert not any(words in problem for problem in problems
                   for words in ("a line", "clear of everything", "crowded", "outside the view")), problems


HELD_OUT_FIGURES = {"kgram_real_text", "fastest_learner", "learning_speed", "own_text_data", "own_text_blend",
                    "overfitting", "hyperparameter_heatmap", "hyperparameter_budgets", "hyperparameter_speed"}


def count_line_labels(figure) -> list[str]:
    """The labels of the artists drawn as count models (their gid), in every axes of the figure."""
    return [artist.get_label() for ax in figure.axes for artist in ax.get_children()
            if artist.get_gid() == h.COUNTING_GID]


@pytest.mark.parametrize("name", sorted(HELD_OUT_FIGURES))
def test_every_figure_of_heldout_loss_draws_the_count_models_of_the_same_text(name):
    figure = h.draw_figure(name, committed_artefact(name))
    labels = count_line_labels(figure)
    plt.close(figure)
    assert labels, f"{name} draws no count model"
    assert any("counts" in label or "count" in label for label in labels), labels


def test_a_figure_without_counts_is_caught():
    figure, ax = plt.subplots()
    ax.plot([0, 1], [5, 4], label="a model")
    assert count_line_labels(figure) == []
    h.draw_counting(ax, {"unigram": 6.3, "best": 4.4, "best_order": 4, "bigram": 4.7})
    assert len(count_line_labels(figure)) == 2
    plt.close(figure)
