#!/usr/bin/env python3
"""Fill the README's notebook table and Colab badges from the notebooks and the measured run times.

The times come from artefacts/notebook_times_quick.json and notebook_times_cpu.json, which
`make run` writes. With --check, change nothing and exit 1 if the README is out of date.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
REPOSITORY = "pico-llm/pico-llm"  # the GitHub repository Colab opens the notebooks from

WHAT_EACH_SHOWS = {
    "01_sanity_check": "The whole pipeline end to end: tokenizer, data, an LSTM's first loss (≈ ln 50,257), "
                       "three abbreviated epochs, samples.",
    "02_kgram_design_comparison": "Three k-gram MLP designs (one-hot, embedding, convolution) trained alike and "
                                  "timed against the starter's per-position loop; which context window to use.",
    "03_transformer_build_up": "RMSNorm, causal attention, RoPE, SwiGLU, the KV cache, each checked; four "
                               "presets trained beside the LSTM and k-gram; an attention heat map.",
    "04_nucleus_sampling": "What top-p does, measured (diversity against likelihood), and a lab of sliders that "
                           "resample text and show the nucleus.",
    "05_custom_data": "Training on your own text: loss against corpus size and training budget.",
    "06_overfitting": "Train past the turning point of the held-out loss and measure memorisation.",
    "07_hyperparameter_study": "Embedding size, block size, depth and learning rate at a fixed budget: heat maps, "
                               "best configs, quality against speed.",
}


def notebook_names() -> list[str]:
    return sorted(path.stem for path in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def measured_times(preset: str) -> dict:
    path = ROOT / "artefacts" / f"notebook_times_{preset}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "not yet measured"
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def notebook_table() -> str:
    quick, cpu = measured_times("quick"), measured_times("cpu")
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


def filled(readme: str) -> str:
    for marker, body in (("notebook-table", notebook_table()), ("colab-badges", colab_badges())):
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
        if current != wanted:
            print("README.md is out of date: run `python scripts/update_readme.py`.", file=sys.stderr)
            return 1
        return 0
    README.write_text(wanted, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
