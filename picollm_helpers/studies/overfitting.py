"""Notebook 06's study: overfitting a small slice of real text, and the remedies measured side by side.

The run preset's study Transformer trains on the first tokens of the base corpus (a small real
slice, a play and a half) far past the point where its held-out loss on the standard held-out work
stops falling and turns up: the *turning point*. Its training loss keeps falling; the gap between
the two is what it learned by heart. Beside it, the count models fitted on the same slice: at its
turning point the model has learnt more than counting does from that text. Then the remedies,
each on the same slice, seeds and steps:

  dropout        units dropped at random while training (config.dropout)
  weight decay   a stronger pull of the weights towards zero (AdamW's decoupled decay)
  more data      four times the slice: the base corpus's first tokens, four times as many
  early stopping the plain run, stopped at its lowest held-out loss (no run of its own)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np
import pandas as pd

from ..artefacts import history_rows
from ..corpus import build_corpus, standard_heldout
from ..device import seed_everything
from ..drawing import COUNT_STYLES, COUNTING_GID, SPREAD, draw_counting, plot_band, slide_figure, study_title, subplots
from ..heads import vocab_ids_for
from ..models import build_model, describe_head
from ..presets import RunPreset, study_transformer
from ..training import Arithmetic, Budget, Evaluation, Recipe, TrainingRun, how_it_trained, train_model
from .lessons import Study, count_baselines, lesson, paired_effects, per_seed, run_study, runs_by, spread, study_seeds
from .own_text import base_slice


@dataclass(frozen=True)
class OverfittingBudget:
    """The slice, the steps, how often to evaluate, and the remedies' settings on one run preset."""

    slice_tokens: int  # the plain run trains on this many tokens; "more data" on four times as many
    steps: int
    eval_every: int
    batch_size: int
    eval_tokens: int | None  # the slice of the standard held-out work (None: all of it)
    dropout: float = 0.2
    weight_decay: float = 1.0


OVERFITTING_BUDGETS = {
    "quick": OverfittingBudget(slice_tokens=2_048, steps=8, eval_every=2, batch_size=4, eval_tokens=1_024),
    "cpu": OverfittingBudget(slice_tokens=65_536, steps=1_000, eval_every=50, batch_size=16, eval_tokens=8_192),
    "gpu": OverfittingBudget(slice_tokens=262_144, steps=4_000, eval_every=200, batch_size=32, eval_tokens=None),
}
MORE_DATA = 4  # "more data" trains on this many times the slice
REMEDIES = ("none", "dropout", "weight decay", "more data")


def overfitting_study(enc, run: RunPreset, *, device, seeds=None, checkpoint_dir=None) -> dict:
    """The plain run and every remedy, each with every seed; write artefacts/overfitting.json (with its lessons)."""
    return run_study(overfitting_plan(enc, run, device=device, seeds=seeds), preset=run.name, device=device,
                     checkpoint_dir=checkpoint_dir)


def overfitting_plan(enc, run: RunPreset, *, device, seeds=None) -> Study:
    """The study's runs (every remedy with every seed), the function that trains one, its settings and lessons."""
    budget = OVERFITTING_BUDGETS[run.name]
    seeds = list(seeds or study_seeds(run))
    base = build_corpus(enc, run.block_size)
    slices = {"one slice": base_slice(base, budget.slice_tokens),
              "more data": base_slice(base, MORE_DATA * budget.slice_tokens)}
    heldout = standard_heldout(enc, run.block_size, budget.eval_tokens)
    vocab_ids = vocab_ids_for(base, run.vocab, run.min_count)

    def train(config: dict) -> dict:
        remedy = config["remedy"]
        transformer = replace(study_transformer(run), dropout=budget.dropout if remedy == "dropout" else 0.0)
        recipe = Recipe(weight_decay=budget.weight_decay) if remedy == "weight decay" else Recipe()
        corpus = slices["more data" if remedy == "more data" else "one slice"]
        seed_everything(config["seed"])
        model = build_model("transformer", **asdict(transformer), vocab_ids=vocab_ids).to(device)
        training = TrainingRun(budget=Budget(max_steps=budget.steps), batch_size=budget.batch_size,
                               seed=config["seed"], recipe=recipe, evaluation=Evaluation(every=budget.eval_every),
                               arithmetic=Arithmetic(grad_accum_steps=run.grad_accum_steps))
        history = train_model(model, corpus, training, heldout=heldout, name=f"{remedy}, seed {config['seed']}")
        evaluated = history.dropna(subset=["test_loss"])
        turning = evaluated.loc[evaluated["test_loss"].idxmin()]
        window = history["loss"].rolling(budget.eval_every, min_periods=1).mean()
        return {"train_tokens": corpus.num_train_tokens, "turning_step": int(turning["step"]),
                "lowest_loss": float(turning["test_loss"]), "final_loss": float(evaluated["test_loss"].iloc[-1]),
                "final_train_loss": float(window.iloc[-1]),
                "history": history_rows(history[["step", "loss", "test_loss", "test_bpc"]]), **how_it_trained(history)}

    configs = [{"remedy": remedy, "seed": seed} for remedy in REMEDIES for seed in seeds]
    study_config = {"budget": asdict(budget), "seeds": seeds, "transformer": asdict(study_transformer(run)),
                    "block_size": run.block_size, "recipe": asdict(Recipe()), "vocabulary": describe_head(vocab_ids),
                    "slice": slices["one slice"].train[0].name, "slice_tokens": slices["one slice"].num_train_tokens,
                    "more_data": slices["more data"].train[0].name,
                    "more_data_tokens": slices["more data"].num_train_tokens,
                    "heldout": heldout.heldout[0].name, "heldout_tokens": heldout.num_heldout_tokens}
    return Study("overfitting", configs, train, study_config, summarize=lambda runs: overfitting_summary(
        runs, {name: count_baselines(corpus, heldout) for name, corpus in slices.items()}))


def overfitting_summary(runs: list[dict], counting: dict) -> dict:
    return {**overfitting_lessons(runs, counting), "counting": counting}


def overfitting_lessons(runs: list[dict], counting: dict) -> dict:
    """The turning point and the gap on the plain run; what each remedy saves at the end. Each against the count
    models of its own slice, at the runs' lowest held-out loss."""
    remedies = {remedy: group for (remedy,), group in runs_by(runs, "remedy").items()}
    plain = remedies["none"]
    final = lambda run: run["final_loss"]  # noqa: E731
    lowest = lambda run: run["lowest_loss"]  # noqa: E731
    mean = lambda group: spread([lowest(run) for run in group])[0]  # noqa: E731
    slice_counts = counting["one slice"]
    lessons = [
        lesson("Trained past its turning point, the model gets worse on text it never saw, so early stopping "
               "there beats training on: the held-out loss ends above its lowest, in nats per token",
               paired_effects(per_seed(plain, lowest), per_seed(plain, final)), [mean(plain)], slice_counts),
        lesson("It learns its slice by heart: at the end its training loss is below its held-out loss, in nats "
               "per token", paired_effects(per_seed(plain, lambda run: run["final_train_loss"]),
                                           per_seed(plain, final)), [mean(plain)], slice_counts),
    ]
    for remedy in REMEDIES[1:]:
        own = counting["more data" if remedy == "more data" else "one slice"]
        lessons.append(lesson(f"{remedy.capitalize()} lowers the final held-out loss of the same run, in nats per "
                              "token", paired_effects(per_seed(remedies[remedy], final), per_seed(plain, final)),
                              [mean(plain), mean(remedies[remedy])], [slice_counts, own]))
    return {"lessons": lessons}


# ---------------------------------------------------------------- the figure


@slide_figure
def plot_overfitting(artefact: dict):
    """The plain run's training and held-out loss with its turning point, and every remedy's final held-out
    loss beside early stopping's, from overfitting.json."""
    remedies = {remedy: group for (remedy,), group in runs_by(artefact["results"]["runs"], "remedy").items()}
    plain = remedies["none"]
    fig, (curves, bars) = subplots(1, 2, width_ratios=(3, 2))
    histories = [pd.DataFrame(run["history"]) for run in plain]
    steps = histories[0]["step"].to_numpy()
    plot_band(curves, steps, [h["loss"].rolling(10, min_periods=1).mean() for h in histories], label="training")
    evaluated = [h.dropna(subset=["test_loss"]) for h in histories]
    plot_band(curves, evaluated[0]["step"].to_numpy(), [h["test_loss"] for h in evaluated], label="held out",
              marker="o")
    turning = np.mean([run["turning_step"] for run in plain])
    curves.axvline(turning, color="tab:red", linestyle="--", label=f"turning point (step {turning:.0f})")
    counting = artefact["results"].get("counting", {})
    draw_counting(curves, counting.get("one slice"))
    curves.set(xlabel="step", ylabel="loss (nats / token)", title="no remedy")
    curves.legend(title=SPREAD)
    labels = ["early stopping", *[remedy for remedy in remedies if remedy != "none"], "none (to the end)"]
    values = [[run["lowest_loss"] for run in plain], *[[run["final_loss"] for run in remedies[remedy]]
                                                         for remedy in labels[1:-1]], [run["final_loss"] for run in plain]]
    bars.barh(labels, [np.mean(v) for v in values], xerr=[np.std(v, ddof=1) for v in values], capsize=5,
              color="tab:blue")
    bars.set(xlabel="final held-out loss (nats / token)", title="the remedies")
    slice_counts, more_counts = counting.get("one slice"), counting.get("more data")
    if slice_counts and more_counts:
        bars.axvline(slice_counts["best"], gid=COUNTING_GID, label=f"counts of the slice {slice_counts['best']:.2f}",
                     **COUNT_STYLES["best"])
        bars.axvline(more_counts["best"], gid=COUNTING_GID, label=f"counts of 4x the slice {more_counts['best']:.2f}",
                     **{**COUNT_STYLES["best"], "color": "tab:green"})
        bars.legend(loc="upper right")
    reference = [np.mean(v) for v in values] + ([slice_counts["best"], more_counts["best"]] if slice_counts else [])
    bars.set_xlim(min(reference) - 0.3, max(reference) + 0.2)
    bars.invert_yaxis()
    fig.suptitle(study_title(artefact, f"Overfitting {artefact['config']['slice_tokens']:,} tokens, "
                                       f"{artefact['config']['heldout']} held out"))
    return fig
