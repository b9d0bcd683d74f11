"""`make slides`: the presentation built from the committed artefacts, training nothing, in under a minute: a
title page, a page per figure with its lessons or key numbers, the writer's samples; every page 16:9 with text
of 14 pt or more that fits."""

import shutil

import matplotlib.text
import numpy as np
import pypdfium2
import pytest

import picollm_helpers as h
from conftest import run_script_on_an_empty_artefacts_folder

COMMITTED = h.BUNDLED_ARTEFACTS_DIR


def rendered_page(pdf: pypdfium2.PdfDocument, index: int) -> np.ndarray:
    """One page of a PDF as RGB pixels, at 100 dots per inch."""
    page = pdf[index]
    pixels = np.asarray(page.render(scale=100 / 72).to_pil().convert("RGB"))
    page.close()
    return pixels


def assert_not_blank(pixels: np.ndarray, what: str) -> None:
    inked = (pixels.min(axis=2) < 250).mean()
    colours = len(np.unique(pixels.reshape(-1, 3), axis=0))
    assert inked > 0.02 and colours > 32, f"{what} looks blank: {inked:.1%} of it inked, {colours} colours"


def test_make_slides_builds_the_presentation_in_under_a_minute_training_nothing(tmp_path):
    result, seconds = run_script_on_an_empty_artefacts_folder("make_slides.py", tmp_path)
    assert result.returncode == 0, result.stderr
    assert seconds < 60
    assert result.stderr.strip() == "", "a quiet build"
    assert not list(tmp_path.glob("*.json")) and not (tmp_path / "checkpoints").exists(), "nothing was trained"
    shown = [name for name, (artefact, _) in h.FIGURES.items() if h.artefact_path(artefact, COMMITTED).is_file()]
    pdf = pypdfium2.PdfDocument(tmp_path / "slides.pdf")
    try:
        assert len(pdf) == 1 + len(shown) + 1, "a title page, a page per figure, the writer's samples"
        width, height = pdf[0].get_size()
        assert width / height == pytest.approx(16 / 9, rel=0.01)
        assert_not_blank(rendered_page(pdf, 0), "the title page")
        assert_not_blank(rendered_page(pdf, len(pdf) // 2), f"page {len(pdf) // 2 + 1}")
    finally:
        pdf.close()
    assert f"{len(shown) + 2} pages" in result.stdout


def test_every_page_is_16_9_with_text_of_14_pt_or_more_that_fits():
    artefacts, skipped = h.slide_artefacts(COMMITTED)
    for number, page in enumerate(h.slide_pages(artefacts, skipped), start=1):
        width, height = page.get_size_inches()
        assert width / height == pytest.approx(16 / 9, rel=0.01)
        texts = [text for text in page.findobj(matplotlib.text.Text) if text.get_text().strip()]
        assert texts and min(text.get_fontsize() for text in texts) >= 14, f"page {number}"
        problems = h.text_fit_problems(page)
        assert not problems, f"page {number}:\n  " + "\n  ".join(problems)


def test_the_title_page_says_where_the_results_come_from():
    artefacts, skipped = h.slide_artefacts(COMMITTED)
    page = h.title_page(artefacts, skipped)
    words = " ".join(" ".join(text.get_text().split()) for text in page.findobj(matplotlib.text.Text))
    writer = artefacts[h.WRITER_ARTEFACT]
    assert "pico-llm" in words
    for field in (writer["preset"], writer["device"], writer["git_commit"], writer["created"][:10]):
        assert field in words


LESSONS = [{"claim": "the Transformer ends below the LSTM", "measured": 0.4211, "noise": 0.052, "seeds": 3,
            "holds": True},
           {"claim": "depth helps", "measured": 0.02, "noise": 0.09, "seeds": 3, "holds": False}]


def test_lessons_come_before_key_numbers_and_an_unresolved_one_is_never_a_finding():
    artefact = h.read_artefact(h.artefact_path("kgram_real_text", COMMITTED))
    assert h.findings("kgram_real_text", artefact) == h.kgram_real_text_numbers(artefact)
    artefact["results"]["lessons"] = LESSONS
    holds, unresolved = h.findings("kgram_real_text", artefact)
    assert holds == "the Transformer ends below the LSTM (measured 0.421 ± 0.052 over 3 seeds)"
    assert unresolved == "Not resolved at this budget: depth helps (measured 0.020 ± 0.090 over 3 seeds)"
    assert h.with_noise(23456.7, 150.0) == "23,457 ± 150" and h.with_noise(0.5, 0.0) == "0.50 ± 0.00"


def test_key_numbers_are_computed_from_the_artefact():
    for figure, key_numbers in h.KEY_NUMBERS.items():
        assert figure in h.FIGURES
        artefact = h.read_artefact(h.artefact_path(h.FIGURES[figure][0], COMMITTED))
        assert key_numbers(artefact) and all(line.strip() for line in key_numbers(artefact)), figure
    artefact = h.read_artefact(h.artefact_path("next_token", COMMITTED))
    artefact["results"]["nucleus_size"] = 12345
    assert "keeps 12,345 of 50,257 tokens" in h.next_token_numbers(artefact)[1]


def test_a_figure_without_its_artefact_is_left_out_with_a_note(tmp_path):
    for name in ("sanity_check", h.WRITER_ARTEFACT):
        shutil.copy(h.artefact_path(name, COMMITTED), tmp_path)
    slides = h.build_slides(tmp_path / "slides.pdf", folder=tmp_path)
    assert slides.pages == 3, "the title page, sanity_check and the writer's samples"
    missing = {artefact for name, (artefact, _) in h.FIGURES.items() if name != "sanity_check"}
    assert len(slides.skipped) == len(h.FIGURES) - 1
    assert all(any(f"artefacts/{artefact}.json" in note for note in slides.skipped) for artefact in missing)
    title = h.title_page(*h.slide_artefacts(tmp_path))
    assert "Left out" in " ".join(text.get_text() for text in title.texts) and not h.text_fit_problems(title)
    with pytest.raises(h.InputError, match="make run"):
        h.build_slides(tmp_path / "none.pdf", folder=tmp_path / "empty")
    assert not (tmp_path / "none.pdf").exists()


def test_the_writer_page_shows_each_setting_side_by_side_in_monospace():
    writer = h.read_artefact(h.artefact_path(h.WRITER_ARTEFACT, COMMITTED))
    texts = h.writer_page(writer).findobj(matplotlib.text.Text)
    headings = {text.get_text(): text for text in texts if text.get_text() in writer["results"]["writing"]}
    assert list(headings) == list(writer["results"]["writing"])
    lefts = [text.get_position()[0] for text in headings.values()]
    assert lefts == sorted(lefts) and len(set(lefts)) == len(lefts), "side by side, in the artefact's order"
    samples = [text for text in texts if "Mono" in text.get_fontname()]
    assert len(samples) == len(headings) and min(text.get_fontsize() for text in samples) >= 14
    first_words = writer["results"]["writing"]["greedy"]["samples"][0].split()[:3]
    assert samples[0].get_text().replace("\u21b5", " ").split()[:len(first_words)] == first_words


def test_a_failed_build_leaves_nothing_behind(tmp_path, monkeypatch):
    def failing_page(*args):
        raise RuntimeError("a page failed")

    monkeypatch.setattr(h.slides, "title_page", failing_page)
    with pytest.raises(RuntimeError, match="a page failed"):
        h.build_slides(tmp_path / "slides.pdf", folder=COMMITTED)
    assert list(tmp_path.iterdir()) == []


def test_every_finding_stays_on_its_page_cut_to_a_line_that_keeps_what_was_measured():
    from picollm_helpers import slides

    finding = "On only 4,096 tokens, learning beats counting: the Transformer at its best evaluation ends below the " \
              "best count model fitted on the same tokens, in every seed and every run: 0.322 ± 0.021; 0.32 below counting"
    many = [finding] * (slides.MAX_LINES_UNDER_A_FIGURE + 2)
    text, font = slides.bullets([many, many], width=8.0)
    lines = text.splitlines()
    assert len(lines) == len(many), "none dropped, each on one line"
    assert all(line.endswith(": 0.322 ± 0.021; 0.32 below counting") and " …" in line for line in lines)
    assert all(slides.width_in(line, font) <= 8.0 for line in lines)
