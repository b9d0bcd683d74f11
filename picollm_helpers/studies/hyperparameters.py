"""Notebook 07's study: how wide a model should be for the compute a student can afford.

In scaling studies the best model size grows with the compute budget (Kaplan et al. 2020, Hoffmann et
al. 2022): a small model learns fastest at first, a larger one ends lower given more compute. This
study measures whether that holds for a laptop's budgets, and where the widths cross. The run preset's
study Transformer design trains at several widths on the base corpus, each for three budgets of
training compute spanning 16x (every budget a run of its own, its cosine schedule ending with it),
every run with every seed, measured on the standard held-out work beside the count models of the same
text. Budgets are in FLOPs (6 per weight a token meets, `flops_per_token`), so that the lessons hold
on any machine and widths are compared at equal cost: at equal tokens a wider model always learns
more, and costs more. Each run also records its tokens and seconds.

Each width trains at a learning rate suited to it, found first: a grid of rates per width (the
narrowest width's grid, halved for every doubling of width: a wider model wants a smaller step) at
a budget of training tokens, with every seed (its own artefact, `hyperparameter_rates.json`). The
grid's best rate must lie inside it, not at its edge: where it lies at an edge, the grid grows one
rate that way (up to `max_extensions` times), and the artefact warns if it still does. The best
width at each budget must lie inside the widths tried there, and the artefact warns where it does not.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np

from ..artefacts import corpus_size
from ..corpus import build_corpus, standard_heldout
from ..device import seed_everything
from ..drawing import (COUNTING_GID, SPREAD, count_lines, draw_counting, errorbars, pyplot, slide_figure, study_title,
                       subplots)
from ..heads import vocab_ids_for
from ..models import build_model, count_parameters, describe_head, flops_per_token
from ..presets import RunPreset, study_transformer
from ..tokenizer import GPT2_VOCAB_SIZE
from ..training import Arithmetic, Budget, Recipe, TrainingRun, how_it_trained, train_model
from .lessons import (Study, count_baselines, first_seconds, lesson, paired_effects, per_seed, run_study, runs_by,
                      spread, study_seeds)


@dataclass(frozen=True)
class HyperparameterBudget:
    """The widths, budgets and learning rates tried on one run preset."""

    widths: tuple[int, ...]
    budgets: tuple[float, ...]  # training FLOPs, smallest first, spanning 16x
    learning_rates: tuple[float, ...]  # the narrowest width's grid to start from; each doubling of width halves it
    tuning_tokens: int  # the training tokens at which each width's learning rate is found
    max_tokens: int  # a width is not tried at a budget that would train it on more tokens than this
    eval_tokens: int | None  # the slice of the standard held-out work (None: all of it)
    max_extensions: int = 2  # rates the grid may grow by, one at a time, where its best lies at an edge

    def rates_for(self, width: int) -> tuple[float, ...]:
        """The grid of learning rates a width starts from."""
        return tuple(rate * min(self.widths) / width for rate in self.learning_rates)


HYPERPARAMETER_BUDGETS = {
    "quick": HyperparameterBudget(widths=(8, 16, 32), budgets=(5e8, 2e9, 8e9), learning_rates=(4e-3, 8e-3, 1.6e-2),
                                  tuning_tokens=8_192, max_tokens=32_768, eval_tokens=1_024, max_extensions=1),
    "cpu": HyperparameterBudget(widths=(8, 16, 32, 64), budgets=(2.5e11, 1e12, 4e12),
                                learning_rates=(1.6e-2, 3.2e-2, 6.4e-2), tuning_tokens=524_288,
                                max_tokens=8_388_608, eval_tokens=8_192),
    "gpu": HyperparameterBudget(widths=(192, 384, 768), budgets=(4e14, 1.6e15, 6.4e15),
                                learning_rates=(1e-3, 2e-3, 4e-3), tuning_tokens=8_388_608,
                                max_tokens=134_217_728, eval_tokens=None),
}
RATE_STEP = 2.0  # neighbouring rates of a grid differ by this factor


def width_config(run: RunPreset, width: int):
    """The study Transformer at this width (the feed-forward layer four times as wide)."""
    return replace(study_transformer(run), d_model=width, d_ff=4 * width, max_seq_len=run.block_size)


def steps_for(tokens: int, run: RunPreset) -> int:
    """Optimizer steps that train on `tokens` tokens, at the preset's batch and block size."""
    return max(1, round(tokens / (run.batch_size * run.block_size)))


def flops_words(flops: float) -> str:
    """A budget of compute in words: '4 TFLOP', '250 GFLOP'."""
    for scale, unit in ((1e15, "PFLOP"), (1e12, "TFLOP"), (1e9, "GFLOP"), (1e6, "MFLOP")):
        if flops >= scale:
            return f"{flops / scale:g} {unit}"
    return f"{flops:g} FLOP"


class TrainAtWidth:
    """One run of the study: a width, a learning rate and a budget in tokens, trained and measured."""

    def __init__(self, enc, run: RunPreset, device):
        budget = HYPERPARAMETER_BUDGETS[run.name]
        self.run, self.device = run, device
        self.corpus = build_corpus(enc, run.block_size)
        self.heldout = standard_heldout(enc, run.block_size, budget.eval_tokens)
        self.vocab_ids = vocab_ids_for(self.corpus, run.vocab, run.min_count)

    def flops_per_token(self, width: int) -> float:
        """Training FLOPs per token of the study Transformer at this width, with this corpus's head."""
        classes = len(self.vocab_ids) + 1 if self.vocab_ids is not None else GPT2_VOCAB_SIZE
        return flops_per_token(width_config(self.run, width), self.run.block_size, classes)

    def tokens_for(self, flops: float, width: int) -> int:
        """The training tokens a budget of FLOPs buys at this width, in whole optimizer steps."""
        return steps_for(round(flops / self.flops_per_token(width)), self.run) * self.run.batch_size * \
            self.run.block_size

    def __call__(self, config: dict) -> dict:
        seed_everything(config["seed"])
        model = build_model("transformer", **asdict(width_config(self.run, config["width"])),
                            vocab_ids=self.vocab_ids).to(self.device)
        training = TrainingRun(budget=Budget(max_steps=steps_for(config["tokens"], self.run)),
                               batch_size=self.run.batch_size, seed=config["seed"],
                               recipe=Recipe(learning_rate=config["learning_rate"]),
                               arithmetic=Arithmetic(grad_accum_steps=self.run.grad_accum_steps))
        history = train_model(model, self.corpus, training, heldout=self.heldout, name=str(config))
        seconds = float(history["elapsed_s"].iloc[-1])
        tokens = int(history["tokens"].sum())
        return {"loss": float(history["test_loss"].iloc[-1]), "bpc": float(history["test_bpc"].iloc[-1]),
                "tokens_seen": tokens, "seconds": seconds, "tokens_per_s": float(tokens / seconds),
                "steps": int(history["step"].iloc[-1]), "parameters": count_parameters(model),
                "flops_spent": tokens * self.flops_per_token(config["width"]), **how_it_trained(history)}

    def study_config(self, budget: HyperparameterBudget, seeds) -> dict:
        return {"budget": asdict(budget), "seeds": list(seeds), "transformer": asdict(study_transformer(self.run)),
                "tokens_per_batch": self.run.batch_size * self.run.block_size, "block_size": self.run.block_size,
                "batch_size": self.run.batch_size, "recipe": asdict(Recipe()),
                "flops_per_token": {str(width): self.flops_per_token(width) for width in budget.widths},
                "vocabulary": describe_head(self.vocab_ids), "data": "the plays", **corpus_size(self.corpus),
                "heldout": self.heldout.heldout[0].name, "heldout_tokens": self.heldout.num_heldout_tokens}


# ---------------------------------------------------------------- the learning rate of each width


def mean_loss(group: list[dict]) -> float:
    return spread([run["loss"] for run in group])[0]


def loss(run: dict) -> float:
    return run["loss"]


def rate_grid(runs: list[dict], width: int) -> dict[float, list[dict]]:
    """A width's runs of the rate grid, by learning rate."""
    return {rate: group for (rate, run_width), group in runs_by(runs, "learning_rate", "width").items()
            if run_width == width}


def best_rate(grid: dict[float, list[dict]]) -> float:
    return min(grid, key=lambda rate: mean_loss(grid[rate]))


def edge_to_grow(grid: dict[float, list[dict]]) -> float | None:
    """The rate to try next where the best of a grid lies at its edge (one step beyond it), else None."""
    rates, best = sorted(grid), best_rate(grid)
    if best == rates[0]:
        return best / RATE_STEP
    if best == rates[-1]:
        return best * RATE_STEP
    return None


def tune_learning_rates(train: TrainAtWidth, budget: HyperparameterBudget, seeds, counting: dict, *, preset: str,
                        device, checkpoint_dir=None) -> dict:
    """Every width's rate grid at the tuning budget, grown where its best lies at an edge; writes
    artefacts/hyperparameter_rates.json (with its lessons and the rate chosen for each width)."""
    grids = {width: list(budget.rates_for(width)) for width in budget.widths}
    study_config = {**train.study_config(budget, seeds), "tokens": budget.tuning_tokens}
    artefact = None
    for _ in range(budget.max_extensions + 1):
        configs = [{"width": width, "learning_rate": rate, "tokens": budget.tuning_tokens, "seed": seed}
                   for width, rates in grids.items() for rate in sorted(rates) for seed in seeds]
        study = Study("hyperparameter_rates", configs, train, study_config, summarize=lambda runs: {
            **rate_lessons(runs, budget.widths, counting, budget.tuning_tokens), "counting": counting})
        artefact = run_study(study, preset=preset, device=device, checkpoint_dir=checkpoint_dir,
                             reuse=artefact["results"]["runs"] if artefact else ())
        grown = {width: edge_to_grow(rate_grid(artefact["results"]["runs"], width)) for width in grids}
        if not any(grown.values()):
            break
        for width, rate in grown.items():
            if rate is not None:
                grids[width].append(rate)
    return artefact


def rate_lessons(runs: list[dict], widths, counting: dict, tokens: int) -> dict:
    """The rate chosen for each width, a warning for each whose best lies at the edge of its grid, and what a rate
    2x off the best costs, below it and above it, averaged over the widths whose grids have that neighbour (each
    width alone is within its seeds' noise more often than not), and whether too high costs more than too low."""
    chosen, warnings, costs, losses = {}, [], {"below": [], "above": []}, {"below": [], "above": []}
    for width in widths:
        grid = rate_grid(runs, width)
        if not grid:
            continue
        chosen[str(width)] = best = best_rate(grid)
        if edge_to_grow(grid) is not None:
            warnings.append(f"width {width}: the best learning rate, {best:g}, lies at the edge of the grid "
                            f"{sorted(grid)}; a rate beyond it might be better")
        for factor, direction in ((1 / RATE_STEP, "below"), (RATE_STEP, "above")):
            off = next((rate for rate in grid if abs(rate - best * factor) < 1e-12), None)
            if off is not None:
                costs[direction].append(paired_effects(per_seed(grid[best], loss), per_seed(grid[off], loss)))
                losses[direction] += [mean_loss(grid[best]), mean_loss(grid[off])]
    words = f"{tokens:,} tokens"
    lessons = [lesson(f"A learning rate 2x {direction} each width's best costs held-out loss, averaged over the "
                      f"{len(costs[direction])} widths, in nats per token"
                      f"{first_seconds(losses[direction], counting, words)}",
                      mean_over_widths(costs[direction]), losses[direction], counting)
               for direction in ("below", "above") if costs[direction]]
    if costs["below"] and costs["above"]:
        lessons.append(lesson("Too high a rate costs more than too low: 2x above the best against 2x below, averaged "
                              f"over the widths, in nats per token{first_seconds(losses['above'], counting, words)}",
                              [above - below for above, below in zip(mean_over_widths(costs["above"]),
                                                                     mean_over_widths(costs["below"]))],
                              losses["above"] + losses["below"], counting))
    return {"lessons": lessons, "chosen": chosen, "warnings": warnings}


def mean_over_widths(effects: list[list[float]]) -> list[float]:
    """Per seed, the mean of one effect over the widths ([width][seed] -> [seed])."""
    return [sum(seed_effects) / len(seed_effects) for seed_effects in zip(*effects)]


# ---------------------------------------------------------------- the best width at each budget


def budget_configs(train: TrainAtWidth, budget: HyperparameterBudget, rates: dict, seeds) -> list[dict]:
    """Every width at every budget of FLOPs, at its chosen rate, with every seed; a width the budget would train on
    more than `max_tokens` tokens is left out there."""
    return [{"width": width, "learning_rate": rates[str(width)], "flops": flops, "tokens": tokens, "seed": seed}
            for flops in budget.budgets for width in budget.widths
            if (tokens := train.tokens_for(flops, width)) <= budget.max_tokens for seed in seeds]


def hyperparameter_study(enc, run: RunPreset, *, device, seeds=None, checkpoint_dir=None) -> dict:
    """Each width's learning rate, then every width at every budget of FLOPs with every seed; writes
    artefacts/hyperparameter_rates.json and artefacts/hyperparameters.json (with their lessons) and returns the
    second."""
    budget = HYPERPARAMETER_BUDGETS[run.name]
    seeds = list(seeds or study_seeds(run))
    train = TrainAtWidth(enc, run, device)
    counting = count_baselines(train.corpus, train.heldout)
    rates = tune_learning_rates(train, budget, seeds, counting, preset=run.name, device=device,
                                checkpoint_dir=checkpoint_dir)
    chosen = rates["results"]["chosen"]
    study_config = {**train.study_config(budget, seeds), "learning_rates": chosen,
                    "rate_warnings": rates["results"]["warnings"]}
    study = Study("hyperparameters", budget_configs(train, budget, chosen, seeds), train, study_config,
                  summarize=lambda runs: {**budget_lessons(runs, counting), "counting": counting})
    return run_study(study, preset=run.name, device=device, checkpoint_dir=checkpoint_dir)


def width_plan(enc, run: RunPreset, *, device, seeds=None) -> Study:
    """What trains any run of either of this study's artefacts again: the function that trains one width at one rate
    for one budget of tokens, and the settings both artefacts record (the rates' adds its tokens, the budgets' the
    rates it chose)."""
    train = TrainAtWidth(enc, run, device)
    seeds = list(seeds or study_seeds(run))
    return Study("hyperparameters", [], train, train.study_config(HYPERPARAMETER_BUDGETS[run.name], seeds))


def by_budget(runs: list[dict]) -> dict[float, dict[int, list[dict]]]:
    """The runs of every budget, by width: {flops: {width: runs}}."""
    table: dict[float, dict[int, list[dict]]] = {}
    for (flops, width), group in runs_by(runs, "flops", "width").items():
        table.setdefault(flops, {})[width] = group
    return {flops: dict(sorted(widths.items())) for flops, widths in sorted(table.items())}


def best_widths(runs: list[dict]) -> dict[float, int]:
    """The best width (lowest mean held-out loss) at each budget."""
    return {flops: min(widths, key=lambda width: mean_loss(widths[width])) for flops, widths in by_budget(runs).items()}


def width_warnings(table: dict[float, dict[int, list[dict]]], best: dict[float, int]) -> list[str]:
    """A warning for each budget whose best width is the narrowest or the widest tried there."""
    return [f"{flops_words(flops)}: the best width, {best[flops]}, is the {edge} of those tried there "
            f"({', '.join(map(str, widths))}); a width beyond it might be better"
            for flops, widths in table.items()
            for edge, end in (("narrowest", min(widths)), ("widest", max(widths))) if best[flops] == end]


def tokens_of(runs: list[dict]) -> int:
    return runs[0]["config"]["tokens"]


def width_lesson(widths: dict[int, list[dict]], flops: float, better: int, worse: int, counting: dict) -> dict:
    losses = [mean_loss(widths[better]), mean_loss(widths[worse])]
    return lesson(f"With {flops_words(flops)} of training, width {better} ({tokens_of(widths[better]):,} tokens) beats "
                  f"width {worse} ({tokens_of(widths[worse]):,} tokens) on the held-out loss, in nats per token"
                  f"{first_seconds(losses, counting, flops_words(flops))}",
                  paired_effects(per_seed(widths[better], loss), per_seed(widths[worse], loss)), losses, counting)


def crossing_flops(table: dict[float, dict[int, list[dict]]], narrow: int, wide: int) -> float | None:
    """Where the wide model's mean held-out loss first drops below the narrow one's, between two budgets (on a log
    scale of FLOPs, by a straight line), or None if it never does in the budgets measured."""
    budgets = [flops for flops in table if narrow in table[flops] and wide in table[flops]]
    gaps = [mean_loss(table[flops][wide]) - mean_loss(table[flops][narrow]) for flops in budgets]
    for (low, high), (gap_low, gap_high) in zip(zip(budgets, budgets[1:]), zip(gaps, gaps[1:])):
        if gap_low >= 0 > gap_high:
            share = gap_low / (gap_low - gap_high)
            return float(low * (high / low) ** share)
    return None


def budget_lessons(runs: list[dict], counting: dict) -> dict:
    """At the smallest and the largest budget, the best width against the runner-up; whether the best width grows
    with the budget and where it crosses; what a narrower model gains in speed; and a warning for each budget whose
    best width is at the edge of those tried."""
    table = by_budget(runs)
    best = best_widths(runs)
    smallest, largest = min(table), max(table)
    lessons = []
    for flops in (smallest, largest):
        widths = table[flops]
        runner_up = min((width for width in widths if width != best[flops]), key=lambda w: mean_loss(widths[w]))
        lessons.append(width_lesson(widths, flops, best[flops], runner_up, counting))
    narrow, wide = best[smallest], best[largest]
    if wide != narrow and wide in table[smallest] and narrow in table[largest]:
        gains = paired_effects(per_seed(table[largest][wide], loss), per_seed(table[largest][narrow], loss))
        costs = paired_effects(per_seed(table[smallest][narrow], loss), per_seed(table[smallest][wide], loss))
        lessons.append(lesson(f"The best width grows with the budget: width {wide}, behind width {narrow} at "
                              f"{flops_words(smallest)}, is ahead at {flops_words(largest)}; the smaller of its two "
                              "margins, in nats per token", [min(gain, cost) for gain, cost in zip(gains, costs)],
                              [mean_loss(table[largest][wide]), mean_loss(table[largest][narrow])], counting))
    speed = lambda run: run["tokens_per_s"]  # noqa: E731
    slim, broad = min(table[largest]), max(table[largest])
    slim_speed, broad_speed = per_seed(table[largest][slim], speed), per_seed(table[largest][broad], speed)
    lessons.append(lesson(f"A narrower model trains more tokens per second: width {slim} over width {broad}, as a "
                          "ratio minus 1", [slim_speed[seed] / broad_speed[seed] - 1 for seed in sorted(slim_speed)],
                          [mean_loss(table[largest][slim]), mean_loss(table[largest][broad])], counting))
    crossing = crossing_flops(table, narrow, wide) if wide != narrow else None
    return {"lessons": lessons, "best_widths": {f"{flops:g}": width for flops, width in best.items()},
            "crossing_flops": crossing, "width_warnings": width_warnings(table, best)}


# ---------------------------------------------------------------- the figures


def rate_cells(artefact: dict) -> dict[tuple[float, int], list[float]]:
    """The held-out losses of every (learning rate, width) cell of hyperparameter_rates.json, over the seeds."""
    return {(rate, width): [run["loss"] for run in group]
            for (rate, width), group in runs_by(artefact["results"]["runs"], "learning_rate", "width").items()}


@slide_figure
def plot_hyperparameter_heatmap(artefact: dict):
    """Held-out loss over learning rate and width at the tuning budget, each cell its mean and seed-to-seed s.d., the
    rate chosen for each width outlined, from hyperparameter_rates.json. A width's grid can be wider than another's
    (grown where its best lay at an edge); cells it never tried are blank."""
    cells = rate_cells(artefact)
    rates, widths = sorted({rate for rate, _ in cells}), sorted({width for _, width in cells})
    means = np.array([[np.mean(cells[(rate, width)]) if (rate, width) in cells else np.nan for rate in rates]
                      for width in widths])
    fig, ax = subplots()
    image = ax.imshow(means, cmap="viridis_r", aspect="auto", origin="lower")
    ax.grid(False)
    ax.set_xticks(range(len(rates)), [f"{rate:g}" for rate in rates])
    ax.set_yticks(range(len(widths)), [str(width) for width in widths])
    for (rate, width), values in cells.items():
        i, j = widths.index(width), rates.index(rate)
        light = image.norm(means[i, j]) < 0.5  # viridis_r is yellow at the low end
        spread_text = f"\n± {np.std(values, ddof=1):.2f}" if len(values) > 1 else ""
        ax.text(j, i, f"{np.mean(values):.2f}{spread_text}", ha="center", va="center",
                color="black" if light else "white")
    for width, rate in artefact["results"]["chosen"].items():
        ax.add_patch(pyplot().Rectangle((rates.index(rate) - 0.5, widths.index(int(width)) - 0.5), 1, 1, fill=False,
                                   edgecolor="tab:red", linewidth=3))
    ax.set(xlabel="peak learning rate", ylabel="width (d_model)")
    bar = pyplot().colorbar(image, ax=ax, label="held-out loss (nats / token)")
    counting = artefact["results"].get("counting")
    if counting:
        for label, loss, style in count_lines(counting, ("bigram", "best")):
            bar.ax.axhline(loss, label=label, gid=COUNTING_GID, **{**style, "color": "red"})
        low, high = np.nanmin(means), np.nanmax(means)
        bar.ax.set_ylim(min(low, counting["best"]) - 0.02, max(high, counting["bigram"]) + 0.02)
    fig.suptitle(study_title(artefact, f"Learning rate x width, {artefact['config']['tokens']:,} tokens "
                                       "(counts on the bar)"))
    return fig


def budget_points(artefact: dict) -> dict[int, dict[float, list[dict]]]:
    """The runs of hyperparameters.json by width, then by budget: {width: {flops: runs}}."""
    table: dict[int, dict[float, list[dict]]] = {}
    for (width, flops), group in runs_by(artefact["results"]["runs"], "width", "flops").items():
        table.setdefault(width, {})[flops] = group
    return {width: dict(sorted(points.items())) for width, points in sorted(table.items())}


@slide_figure
def plot_hyperparameter_budgets(artefact: dict):
    """Held-out loss against training compute, a line per width (each at its own learning rate), the best width at
    each budget marked, and the count models of the same text, from hyperparameters.json."""
    fig, ax = subplots()
    rates = artefact["config"]["learning_rates"]
    best = {float(flops): width for flops, width in artefact["results"]["best_widths"].items()}
    for width, points in budget_points(artefact).items():
        budgets = list(points)
        line = errorbars(ax, budgets, list(points.values()), lambda run: run["loss"],
                         label=f"width {width} (learning rate {rates[str(width)]:g})")
        won = [flops for flops in budgets if best[flops] == width]
        ax.plot(won, [np.mean([run["loss"] for run in points[flops]]) for flops in won], "*", markersize=22,
                color=line[0].get_color())
    draw_counting(ax, artefact["results"].get("counting"), ("unigram", "bigram", "best"))
    ax.plot([], [], "*", color="grey", markersize=16, label="the best width at that budget")
    ax.set(xscale="log", xlabel="training compute (FLOPs, log scale)", ylabel="held-out loss (nats / token)")
    ax.set_xticks(sorted(best), [flops_words(flops) for flops in sorted(best)])
    ax.minorticks_off()
    fig.legend(*ax.get_legend_handles_labels(), loc="outside right center", title=SPREAD.split(":")[0])
    fig.suptitle(study_title(artefact, "Which width for the compute"))
    return fig


@slide_figure
def plot_hyperparameter_speed(artefact: dict):
    """Held-out loss against seconds of training, a line per width through its budgets, from hyperparameters.json:
    the same runs, for the question a budget in seconds poses."""
    fig, ax = subplots()
    for width, points in budget_points(artefact).items():
        seconds = [np.mean([run["seconds"] for run in runs]) for runs in points.values()]
        errorbars(ax, seconds, list(points.values()), lambda run: run["loss"],
                  label=f"width {width} ({np.mean([run['tokens_per_s'] for runs in points.values() for run in runs]):,.0f}"
                        " tokens/s)")
    draw_counting(ax, artefact["results"].get("counting"), ("unigram", "bigram", "best"))
    ax.set(xscale="log", xlabel="seconds of training (log scale)", ylabel="held-out loss (nats / token)")
    fig.legend(*ax.get_legend_handles_labels(), loc="outside right center", title=SPREAD.split(":")[0])
    fig.suptitle(study_title(artefact, "Quality against seconds: the same runs"))
    return fig
