"""Section 9. Slides: a presentation of the studies, built from the artefacts, training nothing.

`build_slides` writes one PDF of 16:9 pages: a title page saying where the results come from (the
preset, the device, the commit and the date of the artefacts), a page per figure of `FIGURES` with
what its study found beneath it, and a page of the writer's samples at several p, side by side.
What a page says under its figure is computed from the figure's artefact: the lessons its study
computed (`results.lessons`) where it has them, otherwise a few key numbers, one small function per
figure below. matplotlib draws every page (no LaTeX, no browser, no network).
"""

from __future__ import annotations

import math
import os
import re
import textwrap
from collections import Counter
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import NamedTuple

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.textpath import text_to_path

from .artefacts import artefact_path, git_commit, read_artefact
from .drawing import SLIDE_SIZE
from .plots import FIGURES, draw_figure
from .presets import ARTEFACTS_DIR, InputError
from .studies import EVERY_WINDOW, lesson_brief, lesson_line
from .speed import learning_speed_summary

SLIDES_FILE = "slides.pdf"
WRITER_ARTEFACT = "writer"
FIGURE_DPI = 150  # a figure is drawn onto its page as an image of this resolution
HEADLINE_PT, HEADING_PT, BODY_PT, NOTE_PT = 28, 20, 16, 14  # nothing on a page is smaller than 14 pt
MARGIN_IN = 0.45
MAX_LINES_UNDER_A_FIGURE = 8  # so that the figure keeps most of its page
MONOSPACE = FontProperties(family="DejaVu Sans Mono", size=NOTE_PT)  # ships with matplotlib
NOTE_FONT, BODY_FONT, HEADING_FONT = (FontProperties(size=size) for size in (NOTE_PT, BODY_PT, HEADING_PT))
GREY = "0.35"

# What each figure's page is called; a figure not named here is called by its name.
FIGURE_HEADLINES = {
    "sanity_check": "A first LSTM: from a uniform guess to learning",
    "kgram_comparison": "Three k-gram MLP designs against the starter's loop",
    "kgram_real_text": "k-gram designs and context windows on real text",
    "fastest_learner": "Which model learns fastest: per CPU second, per token",
    "learning_speed": "How fast each way of training learns real text",
    "step_breakdown": "Where a training step's time goes",
    "attention_map": "Where the writer's attention looks",
    "next_token": "The next token, and the nucleus top-p keeps",
    "sampling_diversity": "Sampling: variety against likelihood",
    "own_text_data": "Your own text: how much text a model needs",
    "own_text_blend": "Your own text: blending it with the plays",
    "overfitting": "Overfitting: past the turning point, and the remedies",
    "hyperparameter_heatmap": "The learning rate each width wants",
    "hyperparameter_budgets": "Which width for the compute you can afford",
    "hyperparameter_speed": "The same runs against seconds",
}


class Slides(NamedTuple):
    path: Path
    pages: int
    skipped: list[str]  # one note per figure left out, naming its missing artefact


# ---------------------------------------------------------------- what a page says: lessons or key numbers

def sanity_check_numbers(artefact: dict) -> list[str]:
    results = artefact["results"]
    longer, steps = results["longer_run_losses"], results["epoch_losses"]
    return [f"First loss {results['initial_loss']:.2f} nats beside ln V = {results['ln_vocab']:.2f}: an untrained "
            "model guesses about uniformly over the vocabulary",
            f"After the command's {len(steps)} steps {steps[-1]:.2f} nats; after {len(longer)} steps "
            f"{longer[-1]:.2f} nats"]


def kgram_comparison_numbers(artefact: dict) -> list[str]:
    results = artefact["results"]
    designs, loop = results["designs"], results["starter_loop"]
    fastest = max(designs, key=lambda design: designs[design]["tokens_per_s"])
    lowest = min(designs, key=lambda design: designs[design]["final_loss"])
    return [f"Fastest design: {fastest}, {designs[fastest]['tokens_per_s']:,.0f} tokens/s, "
            f"{designs[fastest]['speedup_over_loop']:.0f}x the starter's loop as the starter runs "
            f"({loop['tokens_per_s']:,.0f} tokens/s)",
            f"Lowest training loss after {artefact['config']['steps']} steps: {lowest}, "
            f"{designs[lowest]['final_loss']:.2f} nats (every design on the same batches and seed)",
            *vectorising_alone(results)]


def vectorising_alone(results: dict) -> list[str]:
    """How much of the speed-up is vectorising, and how much the batches' repeated windows (none before it was
    measured)."""
    every, windows = results["designs"].get(EVERY_WINDOW), results.get("windows")
    if every is None or windows is None:
        return []
    return [f"Vectorising alone (every window, as the loop): {every['speedup_over_loop']:.0f}x; the rest is each "
            f"distinct window once: {windows['distinct']:,} of {windows['positions']:,}"]


def kgram_real_text_numbers(artefact: dict) -> list[str]:
    runs = artefact["results"]["runs"]
    return [f"{label}: held-out loss {run['final_test_loss']:.2f} nats / token, training loss {run['final_loss']:.2f}"
            for label, run in runs.items()] + [f"Best design on held-out text: {artefact['results']['best_design']}"]


def learning_speed_numbers(artefact: dict) -> list[str]:
    """The defaults' margin over counting and over the reference recipe, and the rest of the summary, a sentence a
    line."""
    return [sentence.strip() + ("" if sentence.strip().endswith(".") else ".")
            for sentence in re.split(r"(?<=\.) (?=[A-Z])", learning_speed_summary(artefact)) if sentence.strip()]


def step_breakdown_numbers(artefact: dict) -> list[str]:
    lines = []
    for head, breakdown in artefact["results"]["breakdowns"].items():
        parts = breakdown["parts"]
        share = parts["output head"]["share"] + parts["softmax and loss"]["share"]
        lines.append(f"{head}: {breakdown['step_ms']:,.0f} ms a step, {share:.0%} of it in the output head "
                     "and the loss")
    return lines


def unbroken(token: str) -> str:
    """A token in quotes, its spaces made no-break spaces so that a wrapped line never splits it."""
    return repr(token).replace(" ", "\u00a0")


def attention_map_numbers(artefact: dict) -> list[str]:
    tokens = artefact["results"]["tokens"]
    strongest = []
    for head, weights in enumerate(artefact["results"]["weights"], start=1):
        last_row = weights[-1]
        key = max(range(len(last_row)), key=last_row.__getitem__)
        strongest.append(f"head {head} {unbroken(tokens[key])} ({last_row[key]:.0%})")
    return [f"From the last token, {unbroken(tokens[-1])}, each head attends most to: " + ", ".join(strongest)]


def next_token_numbers(artefact: dict) -> list[str]:
    results = artefact["results"]
    return [f"Most probable after {artefact['config']['prompt']!r}: {results['tokens'][0]} at "
            f"{results['probs'][0]:.0%} (␣ marks a space)",
            f"The nucleus at p = {results['p']:g} keeps {results['nucleus_size']:,} of {results['vocab_size']:,} "
            f"tokens, {results['nucleus_mass']:.1%} of the probability"]


def value_range(values: list[float]) -> str:
    """The range of some measures, in words."""
    low, high = min(values), max(values)
    return f"{low:.2f} for every model" if f"{low:.2f}" == f"{high:.2f}" else f"from {low:.2f} to {high:.2f}"


def sampling_diversity_numbers(artefact: dict) -> list[str]:
    rows = artefact["results"]["rows"]
    settings = list(dict.fromkeys(row["setting"] for row in rows))
    first = [row for row in rows if row["setting"] == settings[0]]
    last = [row for row in rows if row["setting"] == settings[-1]]
    surest = max(last, key=lambda row: row["mean_logprob"])
    surest_first = next(row for row in first if row["model"] == surest["model"])
    return [f"{settings[0]}: distinct-2 {value_range([row['distinct_2'] for row in first])} ({len(first)} models)",
            f"{settings[-1]}: distinct-2 {value_range([row['distinct_2'] for row in last])}",
            f"{surest['model']}, the most confident at {settings[-1]}: distinct-2 {surest_first['distinct_2']:.2f} "
            f"→ {surest['distinct_2']:.2f} and mean log-probability {surest_first['mean_logprob']:.2f} → "
            f"{surest['mean_logprob']:.2f} nats / token, from {settings[0]} to {settings[-1]}"]


KEY_NUMBERS = {
    "sanity_check": sanity_check_numbers,
    "kgram_comparison": kgram_comparison_numbers,
    "kgram_real_text": kgram_real_text_numbers,
    "learning_speed": learning_speed_numbers,
    "step_breakdown": step_breakdown_numbers,
    "attention_map": attention_map_numbers,
    "next_token": next_token_numbers,
    "sampling_diversity": sampling_diversity_numbers,
}


def findings(figure_name: str, artefact: dict, brief: bool = False) -> list[str]:
    """What a figure's page says beneath it: its study's lessons (in full, or `brief`), else its key numbers (none
    for a figure with neither)."""
    lessons = artefact["results"].get("lessons")
    if lessons:
        shown = artefact["results"].get("lessons_by_figure", {}).get(figure_name, range(len(lessons)))
        return [(lesson_brief if brief else lesson_line)(lessons[index]) for index in shown]
    key_numbers = KEY_NUMBERS.get(figure_name)
    return key_numbers(artefact) if key_numbers else []


# ---------------------------------------------------------------- where the results come from

def made_how(artefact: dict) -> tuple[str, str, str]:
    return artefact["preset"], artefact["device"], artefact["git_commit"]


def dates(artefacts: list[dict]) -> str:
    days = sorted({artefact["created"][:10] for artefact in artefacts})
    return days[0] if len(days) == 1 else f"{days[0]} to {days[-1]}"


def provenance_lines(artefacts: dict[str, dict]) -> list[str]:
    """How the results were made: the way most artefacts were made (preset, device, commit, date) first,
    then each other way with the artefacts made so."""
    ways = Counter(made_how(artefact) for artefact in artefacts.values())
    lines = []
    for index, (way, count) in enumerate(ways.most_common()):
        preset, device, commit = way
        made = [name for name, artefact in artefacts.items() if made_how(artefact) == way]
        when = dates([artefacts[name] for name in made])
        if index == 0:
            lines.append(f"Results: the {preset} preset on {device}, commit {commit}, {when} "
                         f"({count} of {len(artefacts)} artefacts)")
        else:
            lines.append(f"{', '.join(made)}: {preset} preset on {device}, commit {commit}, {when}")
    return lines


# ---------------------------------------------------------------- drawing the pages

def new_page() -> Figure:
    """A blank 16:9 page (a Figure of its own, outside pyplot: pages are saved, never shown)."""
    return Figure(figsize=SLIDE_SIZE)


def inches_to_fraction(page: Figure, x_in: float, y_in: float) -> tuple[float, float]:
    """A point given in inches from the page's top left, as figure fractions (matplotlib's origin is bottom left)."""
    width, height = page.get_size_inches()
    return x_in / width, 1 - y_in / height


def put_text(page: Figure, x_in: float, y_in: float, text: str, size: float, **style):
    """Write text with its top left at (x_in, y_in) inches from the page's top left, as it is ('$' starts
    no mathematics)."""
    return page.text(*inches_to_fraction(page, x_in, y_in), text, fontsize=size, va="top", ha="left",
                     parse_math=False, **style)


def width_in(text: str, font: FontProperties) -> float:
    """How wide a line of text is set in a font, in inches (from the font's own metrics)."""
    return text_to_path.get_text_width_height_descent(text, font, ismath=False)[0] / 72


def wrap(line: str, width: float, font: FontProperties, hanging: str = "") -> str:
    """A line broken between words into lines no wider than `width` inches when set in `font`; the lines
    after the first start with `hanging`."""
    lines = [""]
    for word in line.split(" "):
        candidate = f"{lines[-1]} {word}" if lines[-1] else word
        if lines[-1] and width_in(candidate, font) > width:
            lines.append(hanging + word)
        else:
            lines[-1] = candidate
    return "\n".join(lines)


def bottom_in(page: Figure, text) -> float:
    """How far below the page's top edge a text ends, in inches."""
    return (page.bbox.height - text.get_window_extent().y0) / page.dpi


def headline(page: Figure, title: str, subtitle: str) -> float:
    """The page's headline and grey lines beneath it; the inches from the top they take."""
    put_text(page, MARGIN_IN, 0.3, title, HEADLINE_PT, weight="bold")
    note = put_text(page, MARGIN_IN, 0.85, wrap(subtitle, page.get_size_inches()[0] - 2 * MARGIN_IN, NOTE_FONT),
                    NOTE_PT, color=GREY)
    return bottom_in(page, note) + 0.15


def figure_image(figure) -> np.ndarray:
    """A figure as RGB pixels at FIGURE_DPI, drawn in memory (no image file is encoded)."""
    figure.set_dpi(FIGURE_DPI)
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3]


def artefact_note(name: str, artefact: dict) -> str:
    return (f"artefacts/{name}.json · {artefact['preset']} preset · {artefact['device']} · "
            f"commit {artefact['git_commit']} · {artefact['created'][:10]}")


def cut_to_one_line(line: str, width: float, font: FontProperties) -> str:
    """A finding shortened to what one line of `width` inches holds: its claim cut between words, with an ellipsis,
    and what was measured after the claim's last colon kept whole."""
    claim, measured = line.rsplit(": ", 1) if ": " in line else (line, "")
    ending = f": {measured}" if measured else ""
    if width_in(ending, font) > width / 2:  # not a lesson's measured tail: the line is cut as a whole
        claim, ending = line, ""
    words = claim.split(" ")
    while len(words) > 1 and width_in(" ".join(words) + " …" + ending, font) > width:
        words.pop()
    return " ".join(words) + (" …" if words != claim.split(" ") else "") + ending


def bullets(wordings: list[list[str]], width: float) -> tuple[str, FontProperties]:
    """Every finding as a bullet, in the first wording (each a list of lines, fullest first) whose wrapped bullets
    fit MAX_LINES_UNDER_A_FIGURE lines, at the body's size, else at the notes'. Where none fits, the last wording
    with each bullet cut to one line: a finding is shortened to fit, never dropped."""
    for lines in wordings:
        for font in (BODY_FONT, NOTE_FONT):
            text = "\n".join(wrap(f"• {line}", width, font, hanging="   ") for line in lines)
            if text.count("\n") < MAX_LINES_UNDER_A_FIGURE:
                return text, font
    return "\n".join(cut_to_one_line(f"• {line}", width, NOTE_FONT) for line in wordings[-1]), NOTE_FONT


def figure_page(figure_name: str, artefact: dict) -> Figure:
    """One figure of FIGURES drawn from its artefact, its headline above it and its findings beneath it;
    the figure takes the height the findings leave."""
    page = new_page()
    width, height = page.get_size_inches()
    artefact_name = FIGURES[figure_name][0]
    top = headline(page, FIGURE_HEADLINES.get(figure_name, figure_name.replace("_", " ").capitalize()),
                   artefact_note(artefact_name, artefact))
    lines, font = bullets([findings(figure_name, artefact), findings(figure_name, artefact, brief=True)],
                          width - 2 * MARGIN_IN)
    text = page.text(MARGIN_IN / width, MARGIN_IN / height, lines, fontsize=font.get_size(), va="bottom",
                     linespacing=1.3, parse_math=False)
    text_in = text.get_window_extent().height / page.dpi
    image_bottom = MARGIN_IN + (text_in + 0.2 if text_in else 0)
    figure = draw_figure(figure_name, artefact)
    image = figure_image(figure)
    plt.close(figure)
    axes = page.add_axes([MARGIN_IN / width, image_bottom / height, 1 - 2 * MARGIN_IN / width,
                          (height - top - image_bottom) / height])
    axes.imshow(image, interpolation="antialiased")
    axes.set_axis_off()
    return page


def title_page(artefacts: dict[str, dict], skipped: list[str]) -> Figure:
    """The bundle, and where the results on the pages come from: preset, device, commit and date."""
    page = new_page()
    width, _ = page.get_size_inches()
    about = metadata.metadata("pico-llm")
    put_text(page, MARGIN_IN + 0.3, 1.2, about["Name"], 44, weight="bold")
    put_text(page, MARGIN_IN + 0.3, 2.2, wrap(about["Summary"], width - 2 * MARGIN_IN - 0.6, HEADING_FONT),
             HEADING_PT)
    lines = provenance_lines(artefacts)
    lines.append(f"Slides built {datetime.now(timezone.utc):%Y-%m-%d} by {about['Name']} {about['Version']}, "
                 f"commit {git_commit()}")
    if skipped:
        lines.append(f"Left out, for want of their artefacts: {'; '.join(skipped)}")
    body = "\n".join(wrap(line, width - 2 * MARGIN_IN - 0.6, BODY_FONT, hanging="   ") for line in lines)
    put_text(page, MARGIN_IN + 0.3, 3.6, body, BODY_PT, linespacing=1.4)
    return page


def unique_samples(samples: list[str]) -> list[tuple[str, int]]:
    """Each different sample once, in order, with how many seeds wrote it."""
    return list(Counter(samples).items())


def wrapped_sample(sample: str, characters: int) -> str:
    """A sample wrapped to a column of monospace characters; its own line breaks kept, marked with ↵."""
    lines = sample.split("\n")
    marked = [line + ("↵" if index < len(lines) - 1 else "") for index, line in enumerate(lines)]
    return "\n".join(textwrap.fill(line, characters) for line in marked if line)


def setting_summary(setting: dict) -> str:
    """A writing setting's measures, as the writer's artefact stores them."""
    parts = [f"distinct-2 {setting['distinct_2']:.2f}",
             f"{setting['distinct_samples']} different of {len(setting['samples'])}"]
    if not math.isnan(setting.get("word_share", math.nan)):
        parts.append(f"{setting['word_share']:.0%} words")
    return " · ".join(parts)


def fill_column(page: Figure, x_in: float, y_in: float, floor_in: float, blocks: list[str]):
    """Write as many text blocks, one under another, as fit between y_in and floor_in inches from the top;
    a last line says how many did not fit."""
    text = put_text(page, x_in, y_in, "", NOTE_PT, fontproperties=MONOSPACE, linespacing=1.15)
    shown = []
    for count, block in enumerate(blocks):
        rest = len(blocks) - count - 1
        text.set_text("\n\n".join([*shown, block] + ([f"(+ {rest} more)"] if rest else [])))
        if bottom_in(page, text) > floor_in:
            text.set_text("\n\n".join([*shown, f"(+ {len(blocks) - count} more)"]))
            return
        shown.append(block)
    text.set_text("\n\n".join(shown))


def writer_page(artefact: dict) -> Figure:
    """The writer's samples at each setting (greedy, several p), side by side in monospace columns."""
    page = new_page()
    width, height = page.get_size_inches()
    config, writing = artefact["config"], artefact["results"]["writing"]
    top = headline(page, "What the writer writes, greedy and at several p",
                   f"{config['steps']} steps on {config['data']}, continuing "
                   f"{', '.join(map(repr, config['prompts']))} with {len(config['seeds'])} seeds each · "
                   f"{artefact_note(WRITER_ARTEFACT, artefact)}")
    gap = 0.35
    column_in = (width - 2 * MARGIN_IN - gap * (len(writing) - 1)) / len(writing)
    lefts = [MARGIN_IN + index * (column_in + gap) for index in range(len(writing))]
    summaries = []
    for x, (name, setting) in zip(lefts, writing.items()):
        heading = put_text(page, x, top, name, HEADING_PT, weight="bold")
        summaries.append(put_text(page, x, bottom_in(page, heading) + 0.1,
                                  wrap(setting_summary(setting), column_in, NOTE_FONT), NOTE_PT, color=GREY))
    samples_top = max(bottom_in(page, summary) for summary in summaries) + 0.2
    characters = int(column_in / width_in("0", MONOSPACE))
    for x, setting in zip(lefts, writing.values()):
        blocks = [wrapped_sample(sample, characters) + (f"\n(× {seeds} seeds)" if seeds > 1 else "")
                  for sample, seeds in unique_samples(setting["samples"])]
        fill_column(page, x, samples_top, height - MARGIN_IN, blocks)
    return page


# ---------------------------------------------------------------- the presentation

def find_artefact(name: str, folder: str | Path | None = None) -> dict | None:
    """An artefact from `folder` (by default: this run's artefacts, else the bundle's), or None if there is none."""
    try:
        return read_artefact(artefact_path(name, folder) if folder else name)
    except InputError:
        return None


def slide_artefacts(folder: str | Path | None = None) -> tuple[dict[str, dict], list[str]]:
    """The artefacts the slides draw from, by name, and a note for each figure left out for want of its artefact."""
    names = list(dict.fromkeys([artefact for artefact, _ in FIGURES.values()] + [WRITER_ARTEFACT]))
    artefacts = {name: artefact for name in names if (artefact := find_artefact(name, folder)) is not None}
    if not any(artefact in artefacts for artefact, _ in FIGURES.values()):
        raise InputError(f"No artefacts to make slides from in {folder or ARTEFACTS_DIR}: run `make run` first.")
    skipped = [f"{figure} (artefacts/{artefact}.json)" for figure, (artefact, _) in FIGURES.items()
               if artefact not in artefacts]
    if WRITER_ARTEFACT not in artefacts:
        skipped.append(f"the writer's samples (artefacts/{WRITER_ARTEFACT}.json)")
    return artefacts, skipped


def slide_pages(artefacts: dict[str, dict], skipped: list[str]):
    """The presentation's pages in order, each a Figure, drawn one at a time."""
    yield title_page(artefacts, skipped)
    for figure, (artefact, _) in FIGURES.items():
        if artefact in artefacts:
            yield figure_page(figure, artefacts[artefact])
    if WRITER_ARTEFACT in artefacts:
        yield writer_page(artefacts[WRITER_ARTEFACT])


def build_slides(path: str | Path | None = None, folder: str | Path | None = None) -> Slides:
    """Write the presentation of the artefacts to artefacts/slides.pdf (or `path`), atomically; trains nothing."""
    path = Path(path or Path(ARTEFACTS_DIR) / SLIDES_FILE)
    path.parent.mkdir(parents=True, exist_ok=True)
    artefacts, skipped = slide_artefacts(folder)
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        with PdfPages(temporary, metadata={"Title": "pico-llm: the studies"}) as pdf:
            for page in slide_pages(artefacts, skipped):
                pdf.savefig(page)
            pages = pdf.get_pagecount()
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return Slides(path, pages, skipped)
