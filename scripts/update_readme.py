#!/usr/bin/env python3
"""Fill the README's notebook table and Colab badges, and every notebook's Colab set-up cell.

The repository Colab opens the notebooks from and installs the bundle from is written in one
place, pyproject.toml's [project.urls] Repository. The run times come from
artefacts/notebook_times_quick.json and notebook_times_cpu.json, which `make run` writes.
With --check, change nothing and exit 1 if the README or a notebook is out of date.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tomllib
from pathlib import Path

import jupytext
import nbformat
import pandas as pd

import picollm_helpers as h

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
REPOSITORY_URL = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]["Repository"]
REPOSITORY = REPOSITORY_URL.removeprefix("https://github.com/")  # owner/name, for Colab's badge addresses
BUNDLE_ENV_VAR = "PICOLLM_BUNDLE"
SETUP_CELL = f"""import os
import subprocess
import sys

if "google.colab" in sys.modules:  # elsewhere `make setup` has installed the bundle
    bundle = os.environ.get("{BUNDLE_ENV_VAR}", "git+{REPOSITORY_URL}")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", bundle], check=True)"""
SETUP_MARKDOWN = f"""## Set-up
On Colab this cell installs the bundle with pip, which never touches torch (Colab has its own).
Elsewhere `make setup` has installed it, and the cell does nothing. To install your own copy,
set `{BUNDLE_ENV_VAR}` to its address (`git+https://...`) or to the path of a wheel you uploaded."""

WHAT_EACH_SHOWS = {
    "01_sanity_check": "The whole pipeline end to end, on the course notes' command: tokenizer, data, an LSTM's "
                       "first loss (≈ ln 50,257), three abbreviated epochs, samples.",
    "02_kgram_design_comparison": "Three k-gram MLP designs timed against the starter's per-position loop; then on "
                                  "the plays, which design and which context window learn best, held out, beside "
                                  "the count model that reads as many tokens.",
    "03_transformer_build_up": "RMSNorm, causal attention, RoPE, SwiGLU, the KV cache, each checked; which model "
                               "learns fastest per CPU second and per token, and passes counting first; a writer "
                               "of speeches beyond counting; attention.",
    "04_nucleus_sampling": "What top-p does, measured (variety against likelihood), and a lab of sliders that "
                           "resample the writer's speeches and show the nucleus.",
    "05_custom_data": "Your own text: how much text a model needs and what learning adds to counting the same "
                      "tokens, and blending yours with the plays, held out, with seeds.",
    "06_overfitting": "A slice of the plays trained past the turning point of its held-out loss, beside counting; "
                      "dropout, weight decay, more data and early stopping side by side.",
    "07_hyperparameter_study": "How wide a model for the compute you can afford: each width at its own learning "
                               "rate, three budgets of FLOPs spanning 16x, whether the best width grows with the "
                               "budget and where the widths cross; quality against seconds.",
}


STUDIES = {"fastest_learner": "03 · which model learns fastest", "own_text": "05 · your own text",
           "overfitting": "06 · overfitting", "hyperparameter_rates": "07 · the learning rate of each width",
           "hyperparameters": "07 · the best width for a budget of compute"}


def notebook_names() -> list[str]:
    return sorted(path.stem for path in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def artefact(name: str) -> dict:
    """A committed artefact, or {} when it has not been made yet."""
    path = ROOT / "artefacts" / f"{name}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def stamp(run: dict, command: str) -> str:
    """How a table's numbers were made: the command, the date, the device and the commit."""
    return (f"Measured by `{command}` on {run['created'][:10]}, {run['device']}, torch {run['torch_version']}, "
            f"commit {run['git_commit']}; stored in `artefacts/{run['name']}.json`.")


def markdown_table(table, float_format: str) -> str:
    """A pandas table as a Markdown table, numbers formatted alike."""
    header = ["", *map(str, table.columns)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, row in table.iterrows():
        cells = [format(value, float_format) if isinstance(value, float) else str(value) for value in row]
        lines.append("| " + " | ".join([str(label), *cells]) + " |")
    return "\n".join(lines)


def learning_speed_section(name: str = "learning_speed", command: str = "python benchmarks/learning_speed.py") -> str:
    run = artefact(name)
    if not run:
        return f"Not yet measured: run `{command}`."
    works = [record["name"] for record in run["config"]["heldout_files"]]
    end = int(run["config"]["train_seconds"])
    marks = tuple(mark for mark in (30, 60, 120, 300, 600) if mark <= end)[-3:]
    table = h.learning_speed_table(run, marks)[[*(f"held-out loss at {mark} s" for mark in marks),
                                                "final, mean over seeds",
                                                *(f"{work} at {end} s (bits/char)" for work in works), "tokens/s",
                                                "vocabulary"]]
    table["tokens/s"] = table["tokens/s"].map(lambda speed: "" if speed != speed else f"{speed:,.0f}")
    samples = "\n".join(f"- {label}: greedy {result['samples']['greedy']!r}"
                        for label, result in run["results"]["runs"].items())
    return "\n\n".join([h.counting_sentence(run), markdown_table(table, ",.2f"),
                         h.learning_speed_summary(run).removeprefix(h.counting_sentence(run)).strip(),
                         f"What each wrote after its {end} s, continuing {run['config']['prompt']!r}:\n\n{samples}",
                         *remeasured_rows(run), stamp(run, command)])


def count_models_section() -> str:
    run = artefact("count_models")
    if not run:
        return "Not yet measured: run `python benchmarks/count_models.py`."
    samples = "\n".join(f"- {setting}: {text!r}" for setting, text in run["results"]["samples"].items())
    return "\n\n".join([markdown_table(h.count_models_table(run), ",.3f"),
                         f"What the 3-gram count model writes, continuing {run['config']['prompt']!r}:\n\n{samples}",
                         stamp(run, "python benchmarks/count_models.py")])


def recipe_section() -> str:
    run = artefact("recipe_sweep")
    if not run:
        return "Not yet measured: run `python benchmarks/recipe_defaults.py`."
    table = h.recipe_table(run)
    table["tokens/s"] = table["tokens/s"].map("{:,.0f}".format)
    effect = h.prior_effect(run["results"]["runs"]["the defaults"])
    prior = ("The bucket's prior, on the defaults' own weights: the plays' counts end "
             + " and ".join(f"{gain:.3f} nats lower than the uniform bucket on {work}" for work, gain in effect.items())
             + ".")
    beaten = [h.lesson_line(lesson) for lesson in h.recipe_lessons(run) if lesson["holds"]]
    verdict = ("Changes that beat the defaults beyond twice their seed-to-seed noise, not yet the defaults:\n\n"
               + "\n".join(f"- {line}" for line in beaten)) if beaten else \
        "No change beats the defaults beyond twice its seed-to-seed noise."
    return "\n\n".join([markdown_table(table, ",.3f"), verdict, prior, *remeasured_rows(run),
                         stamp(run, "python benchmarks/recipe_defaults.py")])


def remeasured_rows(run: dict) -> list[str]:
    """A line naming a benchmark's rows measured again after the rest (`--remeasure`), and when."""
    measured = run["results"].get("measured", {})
    if not measured:
        return []
    first = min(when["created"] for when in measured.values())
    again = {label: when for label, when in measured.items() if when["created"] != first}
    return [f"Measured again (`--remeasure`): {label}, on {when['created'][:10]} at commit "
            f"{when['git_commit']}." for label, when in again.items()]


def lessons_section() -> str:
    """Every study's lessons, as the notebooks print them, with where each comes from."""
    parts = []
    for name, notebook in STUDIES.items():
        run = artefact(name)
        if not run:
            parts.append(f"**{notebook}**: not yet measured: run `make run`.")
            continue
        lines = "\n".join(f"- {h.lesson_line(lesson)}" for lesson in run["results"]["lessons"])
        parts.append(f"**{notebook}** ({run['preset']} preset, `artefacts/{name}.json`):\n\n{lines}")
    held = [lesson for name in STUDIES if artefact(name) for lesson in artefact(name)["results"]["lessons"]]
    runs = [artefact(name) for name in STUDIES if artefact(name)]
    summary = (f"{sum(lesson['holds'] for lesson in held)} of {len(held)} lessons hold beyond twice their "
               "seed-to-seed noise." if held else "")
    return "\n\n".join([*parts, summary, *(stamp(run, "make run") for run in runs[:1])]).strip()


def writer_section() -> str:
    run = artefact("writer")
    if not run:
        return "Not yet measured: run `make run`."
    results, config = run["results"], run["config"]
    sampled = results["sampled"]
    seeds = len(config["seeds"])
    samples = "\n".join(f"- {setting}: {measures['samples'][0]!r}" for setting, measures in results["writing"].items())
    counts, counting, alone = results["counts"], results["counting"], results["transformer_alone"]
    return "\n\n".join([
        f"{config['vocabulary']}, {config['steps']} steps on {config['data']} ({config['train_tokens']:,} tokens), "
        f"mixed with {counts['label']} (weight {counts['weight']:.2f} on the Transformer, chosen on "
        f"{counts['validation_tokens']:,} validation tokens): held-out loss {results['heldout_loss']:.2f} nats/token, "
        f"{results['heldout_bits_per_char']:.2f} bits per character on {', '.join(config['heldout'])}, "
        f"{counting['best'] - results['heldout_loss']:.2f} below the best count model of the same plays "
        f"({h.count_label(counting['best_order'])}, {counting['best']:.2f}); the Transformer alone "
        f"{alone['heldout_loss']:.2f}. Of the 8-word spans of its {sampled['samples']} sampled "
        f"continuations (p = 0.5 and 1.0, {len(config['prompts'])} prompts x {seeds} seeds, prompts excluded), "
        f"{sampled['copied_span_share']:.1%} occur verbatim in a text in `data/`; {sampled['word_share']:.1%} of "
        "their words are English words or words of the plays.",
        f"What it writes (the first seed):\n\n{samples}",
        stamp(run, "make run")])


def fused_loss_section() -> str:
    run = artefact("fused_loss")
    if not run:
        return "Not yet measured: run `python benchmarks/fused_loss.py`."
    rows = run["results"]["rows"]
    lines = ["| d_model | tokens per step | loss | tokens/s | peak tensor memory (MB) |", "|---|---|---|---|---|"]
    lines += [f"| {row['d_model']} | {row['tokens_per_step']:,} | {'fused' if row['fused'] else 'plain'} | "
              f"{row['tokens_per_s']:,.0f} | {row['peak_memory_mb']:,.0f} |" for row in rows]
    return "\n\n".join(["\n".join(lines), stamp(run, "python benchmarks/fused_loss.py")])


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "not yet measured"
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def notebook_table() -> str:
    quick, cpu = artefact("notebook_times_quick"), artefact("notebook_times_cpu")
    header = ["| # | Notebook | What it shows | quick | cpu |", "|---|---|---|---|---|"]
    rows = []
    for name in notebook_names():
        number, title = name.split("_", 1)
        times = [format_seconds(run.get("results", {}).get("seconds", {}).get(name)) for run in (quick, cpu)]
        rows.append(f"| {number} | [{title.replace('_', ' ')}](notebooks/{name}.ipynb) | {WHAT_EACH_SHOWS[name]} "
                    f"| {times[0]} | {times[1]} |")
    sources = [f"{preset}: {run['created'][:10]}, {run['device']}, commit {run['git_commit']}"
               for preset, run in (("quick", quick), ("cpu", cpu)) if run]
    note = ("Run times are measured by `make run` (`PRESET=quick` and the default `PRESET=cpu`) and stored in "
            "`artefacts/notebook_times_<preset>.json` (" + "; ".join(sources) + ").") if sources else ""
    return "\n".join([*header, *rows, "", note]).strip()


def colab_badges() -> str:
    badge = "https://colab.research.google.com/assets/colab-badge.svg"
    return "\n".join(f"- [![Open In Colab]({badge})](https://colab.research.google.com/github/{REPOSITORY}/blob/main/"
                     f"notebooks/{name}.ipynb) {name}" for name in notebook_names())


def setup_cell_index(notebook) -> int:
    """The index of a notebook's Colab set-up code cell: the one after the "## Set-up" heading."""
    return next(i + 1 for i, cell in enumerate(notebook.cells)
                if cell.cell_type == "markdown" and cell.source.startswith("## Set-up"))


def with_setup_cell(notebook):
    """The notebook with the current set-up heading and cell (a copy)."""
    notebook = nbformat.from_dict(json.loads(json.dumps(notebook)))
    index = setup_cell_index(notebook)
    notebook.cells[index - 1].source = SETUP_MARKDOWN
    notebook.cells[index].source = SETUP_CELL
    return notebook


def outdated_notebooks() -> list[Path]:
    paths = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    return [path for path in paths
            if with_setup_cell(nbformat.read(path, as_version=4)) != nbformat.read(path, as_version=4)]


def write_setup_cells() -> None:
    """Write the set-up cell into every notebook and its py:percent twin."""
    for path in outdated_notebooks():
        notebook = with_setup_cell(nbformat.read(path, as_version=4))
        nbformat.write(notebook, path)
        jupytext.write(notebook, path.with_suffix(".py"), fmt="py:percent")


def throughput_section() -> str:
    """The throughput figures of every device measured: the CPU's, and a GPU's where one was at hand."""
    runs = [artefact(path.stem) for path in sorted((ROOT / "artefacts").glob("throughput_*.json"))]
    if not any(run.get("device", "").startswith("cuda") for run in runs):
        runs.append({})
    sections = []
    for run in runs:
        if not run:
            sections.append("No GPU has been measured yet: on one, `python benchmarks/throughput.py` writes "
                            "`artefacts/throughput_cuda.json`, and this README shows it.")
            continue
        table = h.throughput_table(run)
        table = pd.DataFrame({"tokens/s": table["tokens_per_s"].map("{:,.0f}".format).to_numpy(),
                              "MFU": table["mfu"].map("{:.1%}".format).to_numpy()},
                             index=[" · ".join(index) for index in table.index])
        scale = "full size" if run["preset"] == "gpu" else "the cpu preset's scale"
        sections.append(f"On {run['device']}, at {scale}:\n\n{markdown_table(table, ',.3f')}\n\n"
                        f"{stamp(run, 'python benchmarks/throughput.py')}")
    return "\n\n".join(sections)


def filled(readme: str) -> str:
    sections = (("notebook-table", notebook_table()), ("colab-badges", colab_badges()),
                ("learning-speed", learning_speed_section()),
                ("learning-speed-600", learning_speed_section(
                    "learning_speed_600", "python benchmarks/learning_speed.py --seconds 600 --ways defaults reference "
                                          "--name learning_speed_600")),
                ("count-models", count_models_section()), ("recipe", recipe_section()),
                ("lessons", lessons_section()), ("writer", writer_section()),
                ("fused-loss", fused_loss_section()), ("throughput", throughput_section()))
    for marker, body in sections:
        pattern = re.compile(rf"(<!-- {marker}:start -->\n).*?(<!-- {marker}:end -->)", re.DOTALL)
        readme = pattern.sub(lambda match: f"{match.group(1)}{body}\n{match.group(2)}", readme)
    return readme


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="Exit 1 if the README is out of date.")
    args = parser.parse_args(argv)
    current = README.read_text(encoding="utf-8")
    wanted = filled(current)
    if args.check:
        stale = (["README.md"] if current != wanted else []) + [path.name for path in outdated_notebooks()]
        if stale:
            print(f"{', '.join(stale)} out of date: run `python scripts/update_readme.py`.", file=sys.stderr)
            return 1
        return 0
    README.write_text(wanted, encoding="utf-8")
    write_setup_cells()
    return 0


if __name__ == "__main__":
    sys.exit(main())
