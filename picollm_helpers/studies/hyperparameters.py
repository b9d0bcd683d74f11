"""Notebook 07's study: which settings matter when the budget is a few seconds of a laptop.

The run preset's Transformer design trains on the base corpus for the same seconds in every
config, each with every seed, and is measured on the standard held-out work:

  learning rate x width   every pair (a heat map whose cells show the mean and its noise)
  block size, depth       one at a time, from the centre (the preset's own settings)

A wider or deeper model learns more per token but sees fewer tokens in the same seconds;
quality against speed shows which wins.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

from ..artefacts import corpus_size
from ..corpus import build_corpus, standard_heldout
from ..device import seed_everything
from ..heads import vocab_ids_for
from ..models import build_model, count_parameters, describe_head
from ..presets import RunPreset
from ..training import Recipe, train_model
from .lessons import lesson, paired_effects, per_seed, run_study, runs_by, spread, study_seeds


@dataclass(frozen=True)
class HyperparameterBudget:
    """The seconds every config trains, and the settings tried, on one run preset."""

    seconds: float
    learning_rates: tuple[float, ...]
    widths: tuple[int, ...]
    block_sizes: tuple[int, ...]
    depths: tuple[int, ...]
    eval_tokens: int | None  # the slice of the standard held-out work (None: all of it)


HYPERPARAMETER_BUDGETS = {
    "quick": HyperparameterBudget(seconds=0.25, learning_rates=(2e-3, 4e-3), widths=(16, 32), block_sizes=(16, 32),
                                  depths=(1, 2), eval_tokens=1_024),
    "cpu": HyperparameterBudget(seconds=5.0, learning_rates=(1e-3, 2e-3, 4e-3, 8e-3), widths=(64, 128, 256),
                                block_sizes=(32, 64, 128), depths=(1, 2, 4), eval_tokens=8_192),
    "gpu": HyperparameterBudget(seconds=120.0, learning_rates=(5e-4, 1e-3, 2e-3, 4e-3), widths=(192, 384, 768),
                                block_sizes=(128, 256, 512), depths=(3, 6, 9), eval_tokens=None),
}


def hyperparameter_centre(run: RunPreset) -> dict:
    """The preset's own settings, from which block size and depth are varied one at a time."""
    return {"learning_rate": Recipe().learning_rate, "width": run.transformer.d_model,
            "block_size": run.block_size, "depth": run.transformer.n_blocks}


def hyperparameter_configs(run: RunPreset, seeds) -> list[dict]:
    """Learning rate x width at the centre's block size and depth; then each other block size and depth."""
    budget, middle = HYPERPARAMETER_BUDGETS[run.name], hyperparameter_centre(run)
    settings = [{**middle, "learning_rate": rate, "width": width}
                for rate in budget.learning_rates for width in budget.widths]
    settings += [{**middle, "block_size": block} for block in budget.block_sizes if block != middle["block_size"]]
    settings += [{**middle, "depth": depth} for depth in budget.depths if depth != middle["depth"]]
    return [{**setting, "seed": seed} for setting in settings for seed in seeds]


def hyperparameter_study(enc, run: RunPreset, *, device, seeds=None, checkpoint_dir=None) -> dict:
    """Every config for the preset's seconds; write artefacts/hyperparameters.json (with its lessons)."""
    budget = HYPERPARAMETER_BUDGETS[run.name]
    seeds = list(seeds or study_seeds(run))
    configs = hyperparameter_configs(run, seeds)
    block_sizes = sorted({config["block_size"] for config in configs})
    corpora = {block: build_corpus(enc, block) for block in block_sizes}
    heldouts = {block: standard_heldout(enc, block, budget.eval_tokens) for block in block_sizes}
    vocab_ids = vocab_ids_for(corpora[run.block_size], run.vocab, run.min_count)

    def train(config: dict) -> dict:
        transformer = replace(run.transformer, d_model=config["width"], d_ff=4 * config["width"],
                              n_blocks=config["depth"], max_seq_len=max(config["block_size"], run.block_size))
        seed_everything(config["seed"])
        model = build_model("transformer", **asdict(transformer), vocab_ids=vocab_ids).to(device)
        history = train_model(model, corpora[config["block_size"]], train_seconds=budget.seconds,
                              batch_size=run.batch_size * run.block_size // config["block_size"],
                              recipe=Recipe(learning_rate=config["learning_rate"]), seed=config["seed"],
                              heldout=heldouts[config["block_size"]], grad_accum_steps=run.grad_accum_steps,
                              name=str(config))
        # A step's speed, the median one: the first steps of so short a run also pay one-off costs.
        return {"loss": float(history["test_loss"].iloc[-1]), "bpc": float(history["test_bpc"].iloc[-1]),
                "tokens_per_s": float(history["tokens_per_s"].iloc[min(1, len(history) - 1):].median()),
                "steps": int(history["step"].iloc[-1]), "parameters": count_parameters(model)}

    study_config = {"budget": asdict(budget), "seeds": seeds, "centre": hyperparameter_centre(run),
                    "transformer": asdict(run.transformer), "tokens_per_batch": run.batch_size * run.block_size,
                    "vocabulary": describe_head(vocab_ids), "data": "the plays", **corpus_size(corpora[run.block_size]),
                    "heldout": heldouts[run.block_size].heldout[0].name,
                    "heldout_tokens": heldouts[run.block_size].num_heldout_tokens}
    return run_study("hyperparameters", configs, train, preset=run.name, device=device, study_config=study_config,
                     summarize=lambda runs: hyperparameter_lessons(runs, hyperparameter_centre(run)),
                     checkpoint_dir=checkpoint_dir)


SETTINGS = ("learning_rate", "width", "block_size", "depth")


def points(runs: list[dict]) -> dict[tuple, list[dict]]:
    """The runs of every setting (learning rate, width, block size, depth), its seeds together."""
    return runs_by(runs, *SETTINGS)


def mean_loss(group: list[dict]) -> float:
    return spread([run["loss"] for run in group])[0]


def varied(groups: dict[tuple, list[dict]], middle: dict, setting: str) -> dict:
    """The points that differ from the centre in `setting` alone, by that setting's value."""
    others = [name for name in SETTINGS if name != setting]
    return {key[SETTINGS.index(setting)]: group for key, group in groups.items()
            if all(key[SETTINGS.index(name)] == middle[name] for name in others)}


def loss(run: dict) -> float:
    return run["loss"]


def best_against_worst(line: dict, what: str) -> dict:
    """The best value of one setting against the worst, on the held-out loss."""
    best, worst = min(line, key=lambda v: mean_loss(line[v])), max(line, key=lambda v: mean_loss(line[v]))
    return lesson(f"{what} matters: {best:g} beats {worst:g} on the held-out loss, in nats per token",
                  paired_effects(per_seed(line[best], loss), per_seed(line[worst], loss)))


def learning_rate_off(rates: dict, best: float, factor: float, width: int) -> list[dict]:
    """What a learning rate `factor` times the best costs, if the grid has one."""
    off = next((rate for rate in rates if math.isclose(rate, best * factor)), None)
    if off is None:
        return []
    direction = "below" if factor < 1 else "above"
    return [lesson(f"A learning rate 2x {direction} the best ({off:g} against {best:g}, width {width}) costs "
                   "held-out loss, in nats per token", paired_effects(per_seed(rates[best], loss),
                                                                    per_seed(rates[off], loss)))]


def hyperparameter_lessons(runs: list[dict], middle: dict) -> dict:
    """The best setting, what a 2x-off learning rate costs, width against speed, block size and depth."""
    groups = points(runs)
    grid = {key: group for key, group in groups.items()
            if key[2] == middle["block_size"] and key[3] == middle["depth"]}
    best_rate, best_width = min(grid, key=lambda key: mean_loss(grid[key]))[:2]
    rates = {key[0]: group for key, group in grid.items() if key[1] == best_width}
    lessons = [lesson for factor in (0.5, 2.0) for lesson in learning_rate_off(rates, best_rate, factor, best_width)]
    widths = {key[1]: group for key, group in grid.items() if key[0] == best_rate}
    lessons.append(best_against_worst(widths, f"In the same seconds at learning rate {best_rate:g}, the width"))
    by_figure = {"hyperparameter_heatmap": list(range(len(lessons))), "hyperparameter_speed": [len(lessons)]}
    narrow, wide = min(widths), max(widths)
    speed = lambda run: run["tokens_per_s"]  # noqa: E731
    narrow_speed, wide_speed = per_seed(widths[narrow], speed), per_seed(widths[wide], speed)
    ratios = [narrow_speed[seed] / wide_speed[seed] - 1 for seed in sorted(narrow_speed)]
    lessons.append(lesson(f"A narrower model trains more tokens per second: width {narrow} over width {wide}, as a "
                          "ratio minus 1", ratios))
    by_figure["hyperparameter_shape"] = []
    for setting, what in (("block_size", "The block size"), ("depth", "The depth")):
        line = varied(groups, middle, setting)
        if len(line) > 1:
            by_figure["hyperparameter_shape"].append(len(lessons))
            lessons.append(best_against_worst(line, what))
    best = {"learning_rate": best_rate, "width": best_width, "block_size": middle["block_size"],
            "depth": middle["depth"]}
    return {"lessons": lessons, "lessons_by_figure": by_figure, "best": best}
