"""Notebook 03's study: which model learns fastest, per CPU second and per token, against counting.

Six models race at the run preset's scale on the base corpus: the LSTM, the best k-gram design
of notebook 02, and the four Transformer presets, shrunk alike. Each trains for the same
seconds, with the same recipe, head, batches and seeds, and is evaluated on the same slice of
the standard held-out work after steps 1, 2, 4, 8, ..., every few seconds, and at the end. Every
model's batch holds the same tokens, so the same step is the same number of tokens seen:

  per CPU second  the held-out loss when the time is up (what a student on a laptop pays);
  per token       the held-out loss after the most steps of the doubling schedule that every
                  model reached (what a model learns from);
  past counting   when each model's held-out loss first falls below the bigram count model
                  fitted on the same plays: the moment it has learnt more than pairs of words.

The races are long enough that the Transformers pass the bigram count model. Each Transformer
also generates a few hundred tokens with and without its KV cache, several times, to time the cache.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import asdict, dataclass

import numpy as np

from ..artefacts import corpus_size
from ..corpus import build_corpus, standard_heldout
from ..device import seed_everything
from ..drawing import SPREAD, draw_counting, plot_band, slide_figure, study_title, subplots
from ..heads import vocab_ids_for
from ..models import build_model, count_parameters, describe_head
from ..presets import TRANSFORMER_PRESETS, RunPreset, transformer_config
from ..sampling import generate_tokens
from ..training import Arithmetic, Budget, Evaluation, Recipe, TrainingRun, how_it_trained, replaying, train_model
from .lessons import (Study, count_baselines, first_seconds, lesson, paired_effects, per_seed, run_study, runs_by,
                      spread, study_seeds)

FAMILY_NAMES = {"lstm": "LSTM", "kgram": "k-gram MLP", "transformer": "Transformer"}


@dataclass(frozen=True)
class RaceBudget:
    """How long each model races, and how it is measured."""

    seconds: float  # training seconds per model and seed
    eval_every_seconds: float  # besides the doubling steps, a held-out evaluation this often
    eval_tokens: int | None  # the slice of the standard held-out work evaluated on (None: all of it)
    cache_tokens: int  # tokens generated with and without the KV cache
    cache_repeats: int  # timings of each way; the median counts


RACE_BUDGETS = {"quick": RaceBudget(seconds=0.25, eval_every_seconds=0.1, eval_tokens=1_024, cache_tokens=40,
                                    cache_repeats=1),
                "cpu": RaceBudget(seconds=60.0, eval_every_seconds=5.0, eval_tokens=4_096, cache_tokens=400,
                                  cache_repeats=3),
                "gpu": RaceBudget(seconds=300.0, eval_every_seconds=20.0, eval_tokens=None, cache_tokens=800,
                                  cache_repeats=3)}
DOUBLING_STEPS = tuple(2 ** k for k in range(20))


def time_generation(model, prompt_ids: list[int], new_tokens: int, use_cache: bool, repeats: int = 1) -> float:
    """Seconds to decode new_tokens greedily after the prompt: the median of `repeats` timings."""
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        generate_tokens(model, prompt_ids, new_tokens, use_cache=use_cache)
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


def cache_speedup(model, prompt_ids: list[int], new_tokens: int = 200, repeats: int = 3) -> dict:
    """Greedy decoding with and without the KV cache: the same tokens, and how much faster the cache is (the
    median of `repeats` timings of each way, after a first run of each that also checks the tokens agree)."""
    with_cache = generate_tokens(model, prompt_ids, new_tokens, use_cache=True).tokens
    without_cache = generate_tokens(model, prompt_ids, new_tokens, use_cache=False).tokens
    cached_s = time_generation(model, prompt_ids, new_tokens, use_cache=True, repeats=repeats)
    uncached_s = time_generation(model, prompt_ids, new_tokens, use_cache=False, repeats=repeats)
    return {"new_tokens": new_tokens, "repeats": repeats, "with_cache_s": cached_s, "without_cache_s": uncached_s,
            "speedup": uncached_s / cached_s, "same_tokens": with_cache == without_cache}


def race_models(run: RunPreset, vocab_size: int, best_kgram: str, max_seq_len: int) -> dict[str, tuple[str, dict]]:
    """The racers, {name: (family, constructor arguments)}: the LSTM and the k-gram MLP at the preset's
    width, and every Transformer preset shrunk by the preset's scale."""
    width = run.embed_size
    models = {"LSTM": ("lstm", dict(vocab_size=vocab_size, embed_size=width, hidden_size=width)),
              f"k-gram {best_kgram}": ("kgram", dict(vocab_size=vocab_size, k=3, embed_size=width,
                                                     num_inner_layers=1, variant=best_kgram))}
    for name in TRANSFORMER_PRESETS:
        config = transformer_config(name, run.transformer_scale, vocab_size=vocab_size, max_seq_len=max_seq_len)
        models[name] = ("transformer", asdict(config))
    return models


def race_curve(history) -> list[dict]:
    """The held-out evaluations of a run: step, tokens seen, seconds, nats per token and bits per character."""
    history = history.assign(tokens_seen=history["tokens"].cumsum())
    evaluated = history.dropna(subset=["test_loss"])
    return [{"step": int(row.step), "tokens": int(row.tokens_seen), "seconds": float(row.elapsed_s),
             "loss": float(row.test_loss), "bpc": float(row.test_bpc)} for row in evaluated.itertuples()]


def fastest_learner_study(enc, run: RunPreset, *, device, best_kgram: str = "embedding", seeds=None,
                          prompt: str = "ROSALIND.\n", checkpoint_dir=None) -> dict:
    """Race every model for the preset's seconds; write artefacts/fastest_learner.json (with its lessons)."""
    study = fastest_learner_plan(enc, run, device=device, best_kgram=best_kgram, seeds=seeds, prompt=prompt)
    return run_study(study, preset=run.name, device=device, checkpoint_dir=checkpoint_dir)


def fastest_learner_plan(enc, run: RunPreset, *, device, best_kgram: str = "embedding", seeds=None,
                         prompt: str = "ROSALIND.\n") -> Study:
    """The race as a study: every model with every seed, the function that races one (a config that carries the
    learning rates of a recorded race takes exactly its steps), its settings and its lessons."""
    budget = RACE_BUDGETS[run.name]
    seeds = list(seeds or study_seeds(run))
    corpus = build_corpus(enc, run.block_size)
    heldout = standard_heldout(enc, run.block_size, budget.eval_tokens)
    vocab_ids = vocab_ids_for(corpus, run.vocab, run.min_count)
    prompt_ids = enc.encode_ordinary(prompt)
    models = race_models(run, enc.n_vocab, best_kgram, max(run.block_size, len(prompt_ids) + budget.cache_tokens))

    def race(config: dict) -> dict:
        family, arguments = models[config["model"]]
        seed_everything(config["seed"])
        model = build_model(family, **arguments, vocab_ids=vocab_ids).to(device)
        training = TrainingRun(budget=Budget(train_seconds=budget.seconds), batch_size=run.batch_size,
                               seed=config["seed"], evaluation=Evaluation(every_seconds=budget.eval_every_seconds,
                                                                          at_steps=DOUBLING_STEPS),
                               arithmetic=Arithmetic(grad_accum_steps=run.grad_accum_steps))
        history = train_model(model, corpus, replaying(training, config.get("learning_rates")), heldout=heldout,
                              name=config["model"])
        result = {"family": family, "curve": race_curve(history), "parameters": count_parameters(model),
                  "tokens_per_s": float(history["tokens"].sum() / history["elapsed_s"].iloc[-1]),
                  "steps": int(history["step"].iloc[-1]), **how_it_trained(history)}
        if family == "transformer":
            result["cache"] = cache_speedup(model, prompt_ids, budget.cache_tokens, budget.cache_repeats)
        return result

    configs = [{"model": name, "seed": seed} for name in models for seed in seeds]
    study_config = {"budget": asdict(budget), "seeds": seeds, "block_size": run.block_size,
                    "batch_size": run.batch_size, "recipe": asdict(Recipe()), "vocabulary": describe_head(vocab_ids),
                    "data": "the plays", **corpus_size(corpus), "heldout": heldout.heldout[0].name,
                    "heldout_tokens": heldout.num_heldout_tokens, "prompt": prompt,
                    "models": {name: {"family": family, **arguments} for name, (family, arguments) in models.items()}}
    return Study("fastest_learner", configs, race, study_config,
                 summarize=lambda runs: race_summary(runs, count_baselines(corpus, heldout)))


def race_summary(runs: list[dict], counting: dict) -> dict:
    return {**race_lessons(runs, counting), "counting": counting}


def loss_at_step(run: dict, step: int) -> float:
    return next(point["loss"] for point in run["curve"] if point["step"] == step)


def final_loss(run: dict) -> float:
    return run["curve"][-1]["loss"]


def common_step(runs: list[dict]) -> int:
    """The most steps of the doubling schedule that every run reached: the same tokens for every model."""
    fewest = min(run["steps"] for run in runs)
    return max(step for step in DOUBLING_STEPS if step <= fewest)


def seconds_to_pass(run: dict, line: float) -> float:
    """The seconds of training after which a run's held-out loss first fell below `line` (between two evaluations,
    by a straight line between them); infinity if it never did."""
    previous = None
    for point in run["curve"]:
        if point["loss"] < line:
            if previous is None or previous["loss"] == point["loss"]:
                return point["seconds"]
            share = (previous["loss"] - line) / (previous["loss"] - point["loss"])
            return previous["seconds"] + share * (point["seconds"] - previous["seconds"])
        previous = point
    return math.inf


def best_of_each_family(points: dict[str, list[dict]], metric) -> dict[str, tuple[str, float]]:
    """Each family's best model on `metric` (lowest mean over seeds): {family: (model, mean)}, best family first."""
    best = {}
    for name, runs in points.items():
        family = FAMILY_NAMES[runs[0]["family"]]
        mean = spread([metric(run) for run in runs])[0]
        if family not in best or mean < best[family][1]:
            best[family] = (name, mean)
    return dict(sorted(best.items(), key=lambda item: item[1][1]))


def mean_of(runs: list[dict], metric) -> float:
    return spread([metric(run) for run in runs])[0]


def winner_lesson(points: dict[str, list[dict]], metric, what: str, budget: str, counting: dict) -> dict:
    """The family whose best model is lowest on `metric`, against the best model of the next family (and how
    many tokens per second each trains: per CPU second, more tokens need not mean more learning)."""
    (winner, (best, _)), (runner_up, (second, _)) = list(best_of_each_family(points, metric).items())[:2]
    effects = paired_effects(per_seed(points[best], metric), per_seed(points[second], metric))
    speeds = [spread([run["tokens_per_s"] for run in points[name]])[0] for name in (best, second)]
    losses = [mean_of(points[name], metric) for name in (best, second)]
    return lesson(f"{what}, the {winner} learns fastest: {best}'s held-out loss is below the best "
                  f"{runner_up}'s ({second}, which trains {speeds[1] / speeds[0]:.1f}x the tokens per second), in "
                  f"nats per token{first_seconds(losses, counting, budget, [best, second])}", effects, losses, counting)


def passing_lesson(points: dict[str, list[dict]], counting: dict, seconds: float) -> dict:
    """Which family's best model first passes the bigram count model, against the next family's: the seconds it
    passes sooner (a model that never passes counts as passing when the time is up, so the effect is then a
    lower bound)."""
    line = counting["bigram"]
    passing = lambda run: min(seconds_to_pass(run, line), run["curve"][-1]["seconds"])  # noqa: E731
    (winner, (best, _)), (runner_up, (second, _)) = list(best_of_each_family(points, passing).items())[:2]
    never = all(math.isinf(seconds_to_pass(run, line)) for run in points[second])
    effects = paired_effects(per_seed(points[best], passing), per_seed(points[second], passing))
    losses = [mean_of(points[name], final_loss) for name in (best, second)]
    return lesson(f"The {winner} passes counting first: {best}'s held-out loss falls below the bigram count "
                  f"model's ({line:.2f}) sooner than the best {runner_up}'s ({second}"
                  f"{', which never does in ' + format(seconds, '.0f') + ' s' if never else ''}), in seconds"
                  f"{first_seconds(losses, counting, f'{seconds:.0f} s', [best, second])}", effects, losses, counting)


def race_lessons(runs: list[dict], counting: dict) -> dict:
    """Which family wins per CPU second and per token, which passes counting first, and what the KV cache saves."""
    points = {name: group for (name,), group in runs_by(runs, "model").items()}
    ok = [run for group in points.values() for run in group]
    step = common_step(ok)
    seconds = ok[0]["curve"][-1]["seconds"]
    cached = {name: group for name, group in points.items() if "cache" in group[0]}
    fastest_cache = min(cached, key=lambda name: spread([run["cache"]["with_cache_s"] for run in cached[name]])[0])
    cache_runs = [run for run in cached[fastest_cache] if run["cache"]["same_tokens"]]
    tokens = f"{step * ok[0]['curve'][0]['tokens']:,} tokens"
    lessons = [
        winner_lesson(points, final_loss, f"Per CPU second ({seconds:.0f} s)", f"{seconds:.0f} s", counting),
        winner_lesson(points, lambda run: loss_at_step(run, step), f"Per token ({step} steps, {tokens})", tokens,
                      counting),
        passing_lesson(points, counting, seconds),
        lesson(f"The KV cache makes generating {cache_runs[0]['cache']['new_tokens']} tokens faster, with the same "
               f"tokens: {fastest_cache}'s speed-up minus 1", [run["cache"]["speedup"] - 1 for run in cache_runs],
               [mean_of(cache_runs, final_loss)], counting),
    ]
    return {"lessons": lessons, "common_step": step}


# ---------------------------------------------------------------- the figure


def curve_by_step(runs: list[dict]) -> dict:
    """A model's race curves aligned by step: the steps every seed reached, and the seconds, tokens and
    held-out loss of each seed at them (seeds x points)."""
    steps = sorted(set.intersection(*({point["step"] for point in run["curve"]} for run in runs)))
    at = [{point["step"]: point for point in run["curve"]} for run in runs]
    return {"steps": steps, **{key: np.array([[points[step][key] for step in steps] for points in at])
                               for key in ("seconds", "tokens", "loss")}}


@slide_figure
def plot_fastest_learner(artefact: dict):
    """Held-out loss against seconds and against tokens seen, a band per model, from fastest_learner.json."""
    fig, (by_time, by_tokens) = subplots(1, 2, sharey=True)
    for (name,), runs in runs_by(artefact["results"]["runs"], "model").items():
        curve = curve_by_step(runs)
        line = plot_band(by_time, curve["seconds"].mean(axis=0), curve["loss"], label=name)
        plot_band(by_tokens, curve["tokens"].mean(axis=0), curve["loss"], label=name, color=line.get_color())
    for ax in (by_time, by_tokens):
        draw_counting(ax, artefact["results"].get("counting"), ("unigram", "bigram", "best"))
    by_time.set(xlabel="seconds of training", ylabel="held-out loss (nats / token)")
    by_tokens.set(xlabel="tokens seen (log scale)", xscale="log")
    fig.legend(*by_time.get_legend_handles_labels(), loc="outside right center", title=SPREAD.split(":")[0])
    config = artefact["config"]
    fig.suptitle(study_title(artefact, f"Which model learns fastest: {config['budget']['seconds']:g} s each, "
                                       f"{config['heldout']} held out"))
    return fig
