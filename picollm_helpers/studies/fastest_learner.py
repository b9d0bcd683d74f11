"""Notebook 03's study: which model learns fastest, per CPU second and per token.

Six models race at the run preset's scale on the base corpus: the LSTM, the best k-gram design
of notebook 02, and the four Transformer presets, shrunk alike. Each trains for the same
seconds, with the same recipe, head, batches and seeds, and is evaluated on the same slice of
the standard held-out work after steps 1, 2, 4, 8, ... and at the end. Every model's batch
holds the same tokens, so those steps are the same numbers of tokens seen for all of them:

  per CPU second  the held-out loss when the time is up (what a student on a laptop pays);
  per token       the held-out loss after the most steps of the doubling schedule that every
                  model reached (what a model learns from).

Each Transformer also generates with and without its KV cache, to time the cache.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

from ..artefacts import corpus_size
from ..corpus import build_corpus, standard_heldout
from ..device import seed_everything
from ..heads import vocab_ids_for
from ..models import build_model, count_parameters, describe_head
from ..presets import TRANSFORMER_PRESETS, RunPreset, transformer_config
from ..sampling import generate_tokens
from ..training import Recipe, train_model
from .lessons import lesson, paired_effects, per_seed, run_study, runs_by, spread, study_seeds

FAMILY_NAMES = {"lstm": "LSTM", "kgram": "k-gram MLP", "transformer": "Transformer"}


@dataclass(frozen=True)
class RaceBudget:
    """How long each model races, and how it is measured."""

    seconds: float  # training seconds per model and seed
    eval_tokens: int | None  # the slice of the standard held-out work evaluated on (None: all of it)
    cache_tokens: int  # tokens generated with and without the KV cache


RACE_BUDGETS = {"quick": RaceBudget(seconds=0.25, eval_tokens=1_024, cache_tokens=40),
                "cpu": RaceBudget(seconds=4.5, eval_tokens=4_096, cache_tokens=100),
                "gpu": RaceBudget(seconds=120.0, eval_tokens=None, cache_tokens=200)}
DOUBLING_STEPS = tuple(2 ** k for k in range(20))


def time_generation(model, prompt_ids: list[int], new_tokens: int, use_cache: bool) -> float:
    """Seconds to decode new_tokens greedily after the prompt."""
    started = time.perf_counter()
    generate_tokens(model, prompt_ids, new_tokens, use_cache=use_cache)
    return time.perf_counter() - started


def cache_speedup(model, prompt_ids: list[int], new_tokens: int = 200) -> dict:
    """Greedy decoding with and without the KV cache: the same tokens, and how much faster the cache is."""
    with_cache = generate_tokens(model, prompt_ids, new_tokens, use_cache=True).tokens
    without_cache = generate_tokens(model, prompt_ids, new_tokens, use_cache=False).tokens
    # Those two runs also warm up both paths, so the timed runs below measure the steady state.
    cached_s = time_generation(model, prompt_ids, new_tokens, use_cache=True)
    uncached_s = time_generation(model, prompt_ids, new_tokens, use_cache=False)
    return {"new_tokens": new_tokens, "with_cache_s": cached_s, "without_cache_s": uncached_s,
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
        history = train_model(model, corpus, train_seconds=budget.seconds, batch_size=run.batch_size,
                              seed=config["seed"], eval_at_steps=DOUBLING_STEPS, heldout=heldout,
                              grad_accum_steps=run.grad_accum_steps, name=config["model"])
        result = {"family": family, "curve": race_curve(history), "parameters": count_parameters(model),
                  "tokens_per_s": float(history["tokens"].sum() / history["elapsed_s"].iloc[-1]),
                  "steps": int(history["step"].iloc[-1])}
        if family == "transformer":
            result["cache"] = cache_speedup(model, prompt_ids, budget.cache_tokens)
        return result

    configs = [{"model": name, "seed": seed} for name in models for seed in seeds]
    study_config = {"budget": asdict(budget), "seeds": seeds, "block_size": run.block_size,
                    "batch_size": run.batch_size, "recipe": asdict(Recipe()), "vocabulary": describe_head(vocab_ids),
                    "data": "the plays", **corpus_size(corpus), "heldout": heldout.heldout[0].name,
                    "heldout_tokens": heldout.num_heldout_tokens, "prompt": prompt,
                    "models": {name: {"family": family, **arguments} for name, (family, arguments) in models.items()}}
    return run_study("fastest_learner", configs, race, preset=run.name, device=device, study_config=study_config,
                     summarize=race_lessons, checkpoint_dir=checkpoint_dir)


def loss_at_step(run: dict, step: int) -> float:
    return next(point["loss"] for point in run["curve"] if point["step"] == step)


def final_loss(run: dict) -> float:
    return run["curve"][-1]["loss"]


def common_step(runs: list[dict]) -> int:
    """The most steps of the doubling schedule that every run reached: the same tokens for every model."""
    fewest = min(run["steps"] for run in runs)
    return max(step for step in DOUBLING_STEPS if step <= fewest)


def winner_lesson(points: dict[str, list[dict]], metric, what: str) -> dict:
    """The family whose best model is lowest on `metric`, against the best model of the next family (and how
    many tokens per second each trains: per CPU second, more tokens need not mean more learning)."""
    best_of_family = {}
    for name, runs in points.items():
        family = FAMILY_NAMES[runs[0]["family"]]
        mean = spread([metric(run) for run in runs])[0]
        if family not in best_of_family or mean < best_of_family[family][1]:
            best_of_family[family] = (name, mean)
    (winner, (best, _)), (runner_up, (second, _)) = sorted(best_of_family.items(), key=lambda item: item[1][1])[:2]
    effects = paired_effects(per_seed(points[best], metric), per_seed(points[second], metric))
    speeds = [spread([run["tokens_per_s"] for run in points[name]])[0] for name in (best, second)]
    return lesson(f"{what}, the {winner} learns fastest: {best}'s held-out loss is below the best "
                  f"{runner_up}'s ({second}, which trains {speeds[1] / speeds[0]:.1f}x the tokens per second), in "
                  "nats per token", effects)


def race_lessons(runs: list[dict]) -> dict:
    """Which family wins per CPU second and per token, and what the KV cache saves."""
    points = {name: group for (name,), group in runs_by(runs, "model").items()}
    ok = [run for group in points.values() for run in group]
    step = common_step(ok)
    cached = {name: group for name, group in points.items() if "cache" in group[0]}
    fastest_cache = min(cached, key=lambda name: spread([run["cache"]["with_cache_s"] for run in cached[name]])[0])
    lessons = [
        winner_lesson(points, final_loss, f"Per CPU second ({ok[0]['curve'][-1]['seconds']:.1f} s)"),
        winner_lesson(points, lambda run: loss_at_step(run, step),
                      f"Per token ({step} steps, {step * ok[0]['curve'][0]['tokens']:,} tokens)"),
        lesson(f"The KV cache makes generating faster, with the same tokens: {fastest_cache}'s speed-up minus 1",
               [run["cache"]["speedup"] - 1 for run in cached[fastest_cache] if run["cache"]["same_tokens"]]),
    ]
    return {"lessons": lessons, "common_step": step}
