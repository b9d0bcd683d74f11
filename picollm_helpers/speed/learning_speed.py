"""The learning-speed benchmark: the held-out loss a model reaches after a fixed number of seconds of training
on real text, the same model trained several ways (the starter's, packed, the command line's defaults, the
reference recipe), each beside the count models fitted on the same text; the recipe sweep; and the floors the
defaults are held to."""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import pandas as pd
import torch

from ..artefacts import read_artefact, write_artefact
from ..corpus import VALIDATION_FRACTION, TrainingText, build_corpus, standard_heldout
from ..counts import count_label, fit_count_models, mix_with_counts
from ..device import seed_everything
from ..heads import bucket_log_shares, vocab_ids_for
from ..models import build_model, count_parameters, describe_vocabulary
from ..presets import InputError, TransformerConfig
from ..sampling import Decoding, generate_text
from ..studies.lessons import count_baselines, lesson, paired_effects, spread, with_noise
from ..training import (STARTER_RECIPE, Arithmetic, Budget, Evaluation, Recipe, TrainingRun, evaluate, run_summary,
                        train_model)


def file_record(path: str | os.PathLike) -> dict:
    """A file's name, size and SHA-256: what an artefact records of the data it measured on."""
    path = Path(path)
    data = path.read_bytes()
    return {"name": path.name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


# ---------------------------------------------------------------- the learning-speed benchmark


@dataclass(frozen=True)
class SpeedRun:
    """One way of training for the learning-speed benchmark and the recipe sweep."""

    label: str
    packing: bool
    recipe: Recipe
    vocab: str = "gpt2"  # "gpt2" or "corpus"
    min_count: int | str = "auto"  # a compact head keeps the ids seen at least this often (auto_min_count: as the bundle)
    bucket: str = "plays"  # a compact head's prior over the ids it does not keep
    transformer: TransformerConfig | None = None  # None: the benchmark's shared model
    batch_size: int | None = None  # None: the benchmark's
    block_size: int | None = None  # None: the benchmark's
    compile: bool = False
    threads: int | None = None  # None: torch's own choice (every core)
    counts: bool = False  # mixed with count models of the training text, chosen on validation lines (counts.py)


def speed_run_config(run: SpeedRun) -> dict:
    config = asdict(run)
    config["recipe"] = asdict(run.recipe)
    return config


def check_texts(train_files, heldout_files) -> None:
    for file in [*train_files, *heldout_files]:
        if not Path(file).is_file():
            raise InputError(f"{file} not found: the learning-speed benchmark needs training files and held-out "
                             "files (see benchmarks/learning_speed.py --help).")


@dataclass(frozen=True)
class SpeedBenchmark:
    """What every way of a learning-speed benchmark shares: the text it trains on and is measured on, the model
    (a way may bring its own), the budget in seconds and how often it is measured, the batch and window, the
    seeds, and what the trained models are asked to write. The first way trains for warm_up_seconds before
    anything is measured, unrecorded: the first training in a process runs slower than the same training after it."""

    train_files: tuple
    heldout_files: tuple
    model: TransformerConfig
    train_seconds: float = 120.0
    eval_every_seconds: float = 15.0
    batch_size: int = 16
    block_size: int = 64
    seeds: tuple[int, ...] = (0,)
    prompt: str = "ROSALIND.\n"
    max_new_tokens: int = 40
    warm_up_seconds: float = 15.0

    def warm_up(self) -> SpeedBenchmark:
        """The unrecorded warm-up: the first held-out file, warm_up_seconds of training, one new token."""
        return replace(self, heldout_files=self.heldout_files[:1], train_seconds=self.warm_up_seconds,
                       eval_every_seconds=self.warm_up_seconds, max_new_tokens=1)

    def config(self) -> dict:
        """How the artefact records the benchmark."""
        return {"train_files": [file_record(file) for file in self.train_files],
                "heldout_files": [file_record(file) for file in self.heldout_files],
                "train_seconds": self.train_seconds, "eval_every_seconds": self.eval_every_seconds,
                "batch_size": self.batch_size, "warm_up_seconds": self.warm_up_seconds, "block_size": self.block_size,
                "seeds": list(self.seeds), "prompt": self.prompt, "model": asdict(self.model)}


def learning_speed(benchmark: SpeedBenchmark, runs: list[SpeedRun], *, enc, device, preset: str = "benchmark",
                   name: str = "learning_speed", path=None) -> dict:
    """Train the benchmark's model each way in `runs` for its seconds on the training files; the held-out loss on
    each held-out file against time.

    Every run is evaluated on the same held-out windows of every held-out file (consecutive,
    block_size tokens, every held-out token predicted once), in full-vocabulary nats per token
    and in bits per character, whatever its data path or head, every eval_every_seconds of
    training. Each run records its curves, its summary (tokens/s, steps, tokens) and a greedy and
    a p = 0.8 sample, from its first seed; with several seeds, `by_seed` holds every seed's final
    losses and speed. Writes artefacts/<name>.json (or `path`) and returns it.
    """
    check_texts(benchmark.train_files, benchmark.heldout_files)
    one_speed_run(runs[0], benchmark.warm_up(), benchmark.seeds[0], enc=enc, device=device)
    results = {}
    for run in runs:
        print(f"[{len(results) + 1}/{len(runs)}] {run.label}: {benchmark.train_seconds:g} s of training, seeds "
              f"{list(benchmark.seeds)}", flush=True)
        by_seed = [one_speed_run(run, benchmark, seed, enc=enc, device=device) for seed in benchmark.seeds]
        results[run.label] = {**by_seed[0], "by_seed": [seed_summary(seed, result)
                                                        for seed, result in zip(benchmark.seeds, by_seed)]}
    config = {**benchmark.config(), "runs": {run.label: speed_run_config(run) for run in runs},
              "threads": torch.get_num_threads()}
    counting = benchmark_counting(benchmark.train_files, benchmark.heldout_files, enc, benchmark.block_size)
    written = write_artefact(name, preset=preset, config=config, results={"runs": results, "counting": counting},
                             device=device, path=path)
    return read_artefact(written)


def benchmark_counting(train_files, heldout_files, enc, block_size: int) -> dict:
    """The count models of the training files on each held-out work, scored on the same windows as every run."""
    training = build_corpus(enc, block_size, TrainingText(base_weight=0.0, input_files=train_files))
    return {Path(file).name: count_baselines(training, standard_heldout(enc, block_size, work=Path(file)))
            for file in heldout_files}


def with_runs_measured_again(previous: dict, fresh: dict) -> tuple[dict, dict]:
    """The config and results of `previous` with the runs of `fresh` (the same benchmark, some of its runs
    measured again, say after a busy machine disturbed them) in their place. Every run keeps when, and at
    which commit, it was measured, under results["measured"]. (The warm-up belongs to the process, not to
    a run, and may differ.)"""
    settings = {key: value for key, value in fresh["config"].items()
                if key not in ("runs", "threads", "warm_up_seconds")}
    differing = sorted(key for key, value in settings.items() if previous["config"].get(key) != value)
    if differing:
        raise InputError(f"The runs measured again differ from {previous['name']}.json in {', '.join(differing)}: "
                         "measure them with the settings the artefact was made with, or the whole benchmark anew.")
    stamp = {"created": previous["created"], "git_commit": previous["git_commit"]}
    measured = {label: previous["results"].get("measured", {}).get(label, stamp)
                for label in previous["results"]["runs"]}
    measured.update({label: {"created": fresh["created"], "git_commit": fresh["git_commit"]}
                     for label in fresh["results"]["runs"]})
    config = {**previous["config"], "runs": {**previous["config"]["runs"], **fresh["config"]["runs"]},
              "warm_up_seconds": fresh["config"].get("warm_up_seconds")}
    results = {**previous["results"], **fresh["results"],
               "runs": {**previous["results"]["runs"], **fresh["results"]["runs"]}, "measured": measured}
    return config, results


def write_runs_measured_again(previous: dict, fresh: dict, device, path=None) -> dict:
    """`previous` with the runs of `fresh` in their place (with_runs_measured_again), written where it was read
    from (or `path`); what fresh measured besides its runs (the count models, say) replaces the previous."""
    config, results = with_runs_measured_again(previous, fresh)
    return read_artefact(write_artefact(previous["name"], preset=previous["preset"], config=config, results=results,
                                        device=device, path=path))


def one_speed_run(run: SpeedRun, benchmark: SpeedBenchmark, seed: int, *, enc, device) -> dict:
    """One way of the benchmark with one seed: its curves on every held-out file, summary and samples."""
    train_files, heldout_files, model = benchmark.train_files, benchmark.heldout_files, benchmark.model
    block_size = run.block_size or benchmark.block_size
    text = TrainingText(base_weight=0.0, input_files=tuple(train_files),
                        validation_fraction=VALIDATION_FRACTION if run.counts else 0.0)
    training = build_corpus(enc, block_size, text, packing=run.packing)
    heldouts = {Path(file).name: standard_heldout(enc, block_size, work=Path(file)) for file in heldout_files}
    started = time.perf_counter()
    count_models = fit_count_models(training) if run.counts else None
    counting_s = time.perf_counter() - started if run.counts else 0.0
    vocab_ids = vocab_ids_for(training, run.vocab, run.min_count)
    seed_everything(seed)
    config = run.transformer or model
    network = build_model("transformer", **{**asdict(config), "max_seq_len": max(config.max_seq_len, block_size)},
                          vocab_ids=vocab_ids, bucket=run.bucket).to(device)
    evaluations = []

    def evaluate_each_work(step: int, trained) -> None:
        answer = mix_with_counts(trained, count_models, training.validation) if count_models else trained
        evaluations.append((step, {work: evaluate(answer, heldout) for work, heldout in heldouts.items()},
                            {work: evaluate(trained, heldout) for work, heldout in heldouts.items()}
                            if count_models else None, getattr(answer, "choice", None)))

    threads = torch.get_num_threads()
    torch.set_num_threads(run.threads or threads)
    try:
        timed = TrainingRun(budget=Budget(train_seconds=benchmark.train_seconds, seconds_spent=counting_s),
                            batch_size=run.batch_size or benchmark.batch_size, seed=seed, recipe=run.recipe,
                            evaluation=Evaluation(every_seconds=benchmark.eval_every_seconds),
                            arithmetic=Arithmetic(compile=run.compile))
        history = train_model(network, training, timed, name=run.label, on_eval=evaluate_each_work)
    finally:
        torch.set_num_threads(threads)
    seconds = history.set_index("step")["elapsed_s"]

    def curves(index: int) -> dict:
        return {work: [[float(seconds[step]), found[work].nats_per_token, found[work].bits_per_char]
                       for step, *measured in evaluations for found in [measured[index]]] for work in heldouts}

    answer = mix_with_counts(network, count_models, training.validation) if count_models else network
    other_prior = {"plays": "uniform", "uniform": "plays"}[run.bucket]
    with_other_prior = {work: loss_with_prior(network, heldout, other_prior).nats_per_token
                        for work, heldout in heldouts.items()} if network.vocabulary.compact else None
    samples = {name: generate_text(answer, enc, benchmark.prompt, benchmark.max_new_tokens, Decoding(top_p=top_p),
                                   seed=seed)
               for name, top_p in (("greedy", None), ("p = 0.8", 0.8))}
    counted = {"curves_alone": curves(1), "counting_seconds": counting_s,
               "mixtures": [choice for *_, choice in evaluations]} if count_models else {}
    return {**run_summary(history), "curves": curves(0), **counted, "samples": samples,
            "parameters": count_parameters(network), "vocabulary": describe_vocabulary(network),
            "block_size": block_size,
            "final_loss_with_the_other_prior": with_other_prior and {"prior": other_prior, "loss": with_other_prior}}


def seed_summary(seed: int, result: dict) -> dict:
    """What a run's table needs of one seed: its final loss on each held-out work (and the model's alone, for a run
    mixed with counts), its speed and steps."""
    alone = {"final_loss_alone": {work: curve[-1][1] for work, curve in result["curves_alone"].items()}} \
        if "curves_alone" in result else {}
    return {"seed": seed, "final_loss": {work: curve[-1][1] for work, curve in result["curves"].items()}, **alone,
            "tokens_per_s": result["tokens_per_s"], "steps": result["steps"]}


def loss_with_prior(model, heldout, prior: str):
    """The held-out loss of a trained compact model with its bucket's probability shared by another prior.

    The prior never changes training (a target's share of the bucket is a constant the gradient
    does not see), so evaluating the same weights both ways measures the prior's effect exactly.
    """
    vocabulary = model.vocabulary
    trained_with = vocabulary.bucket_log_share
    vocabulary.bucket_log_share = bucket_log_shares(prior, vocabulary.kept_ids, vocabulary.vocab_size).to(
        trained_with.device)
    try:
        return evaluate(model, heldout)
    finally:
        vocabulary.bucket_log_share = trained_with


STARTER_WAY = "per-example lines, Adam at a constant rate (the starter)"
PACKED_FULL = "packed, AdamW + cosine, full head"
PACKED_COMPACT = "packed, AdamW + cosine, compact head"
PRESET_TRANSFORMER = "the cpu preset's Transformer (compact head)"
COMMAND_LINE = "the command line's defaults"
COMMAND_LINE_COMPILED = "the command line's defaults with --compile"
REFERENCE = "the reference recipe on the command line's model (full head)"
MARKS_S = (30, 60, 120)
BENCHMARK_WAYS = {"starter": STARTER_WAY, "packed_full": PACKED_FULL, "packed_compact": PACKED_COMPACT,
                  "preset": PRESET_TRANSFORMER, "defaults": COMMAND_LINE, "compiled": COMMAND_LINE_COMPILED,
                  "reference": REFERENCE}  # the benchmark's ways by short name, for --ways


def benchmark_runs(preset_transformer: TransformerConfig, command_line: SpeedRun) -> list[SpeedRun]:
    """The ways the learning-speed benchmark compares: on its shared model the starter's way, the packed
    recipe with a full and with a compact head; the cpu preset's Transformer; the command line's defaults,
    and the same with --compile (its compile time inside the budget: is it worth turning on by default?);
    and the reference recipe (AdamW with warm-up and cosine decay, the full head, packed windows) on the
    command line's model."""
    return [SpeedRun(STARTER_WAY, packing=False, recipe=STARTER_RECIPE),
            SpeedRun(PACKED_FULL, packing=True, recipe=Recipe()),
            SpeedRun(PACKED_COMPACT, packing=True, recipe=Recipe(), vocab="corpus"),
            SpeedRun(PRESET_TRANSFORMER, packing=True, recipe=Recipe(), vocab="corpus", transformer=preset_transformer),
            replace(command_line, label=COMMAND_LINE),
            replace(command_line, label=COMMAND_LINE_COMPILED, compile=True),
            SpeedRun(REFERENCE, packing=True, recipe=Recipe(), transformer=command_line.transformer)]


def recipe_runs(base: SpeedRun) -> list[SpeedRun]:
    """The sweep behind the command line's defaults: `base` (the defaults), then each of its choices changed
    in turn: the count model it is mixed with, its start from counts, the head, the compact head's min_count,
    the batch, the learning rate, the warm-up, the decay, torch.compile and the threads. (The bucket's prior
    changes no training: every compact run reports its loss under the other prior too, measured on the same
    weights.)"""
    def changed(label: str, **changes) -> SpeedRun:
        return replace(base, label=label, **changes)

    def recipe(label: str, **changes) -> SpeedRun:
        return changed(label, recipe=replace(base.recipe, **changes))

    return [changed("the defaults"),
            changed("no count model (the Transformer alone)", counts=False),
            recipe("random start (GPT-2's initialisation)", init="random"),
            changed("full head (all 50,257 ids)", vocab="gpt2"),
            *[changed(f"min_count {count}", min_count=count) for count in (1, 4, 8, 32)],
            *[changed(f"batch {size}", batch_size=size) for size in (4, 16, 32) if size != base.batch_size],
            *[recipe(f"learning rate {rate:g}", learning_rate=rate) for rate in (1e-3, 4e-3)],
            recipe("no warm-up", warmup_steps=0),
            recipe("cosine to 0", min_lr_ratio=0.0),
            recipe("constant rate", schedule="constant"),
            changed("torch.compile", compile=True),
            changed("one thread", threads=1)]


def loss_at(curve: list, seconds: float) -> float:
    """The held-out loss of the first evaluation at or after `seconds` of training (the last one if none)."""
    return next((point[1] for point in curve if point[0] >= seconds), curve[-1][1])


def bits_at(curve: list, seconds: float) -> float:
    """Bits per character of the first evaluation at or after `seconds` of training (the last one if none)."""
    return next((point[2] for point in curve if point[0] >= seconds), curve[-1][2])


def mean_loss_at(run: dict, seconds: float) -> float:
    """The held-out loss at `seconds`, averaged over the held-out works (each weighed alike)."""
    return sum(loss_at(curve, seconds) for curve in run["curves"].values()) / len(run["curves"])


def final_loss_over_works_by_seed(run: dict, key: str = "final_loss") -> dict[int, float]:
    """A run's final held-out loss averaged over the held-out works (each weighed alike), per seed (`key`:
    final_loss_alone for the model of a run mixed with counts, alone)."""
    return {seed["seed"]: sum(seed[key].values()) / len(seed[key]) for seed in run["by_seed"]}


def recipe_table(artefact: dict):
    """Each way's final held-out loss on every held-out work and their mean, averaged over its seeds, the
    mean's seed-to-seed standard deviation, and its tokens/s, best first, from recipe_sweep.json."""
    rows = {}
    for label, run in artefact["results"]["runs"].items():
        finals = [seed["final_loss"] for seed in run["by_seed"]]
        means = list(final_loss_over_works_by_seed(run).values())
        rows[label] = {**{work: sum(final[work] for final in finals) / len(finals) for work in finals[0]},
                       "mean": sum(means) / len(means), "s.d. over seeds": pd.Series(means).std(),
                       "tokens/s": sum(seed["tokens_per_s"] for seed in run["by_seed"]) / len(run["by_seed"])}
    return pd.DataFrame(rows).T.sort_values("mean")


def recipe_lessons(artefact: dict) -> list[dict]:
    """For each row of the sweep, the lesson "this change beats the defaults": its seeds' mean final held-out
    loss over the works against the defaults' on the same seeds, holding beyond twice its noise or not."""
    runs = artefact["results"]["runs"]
    defaults = final_loss_over_works_by_seed(runs["the defaults"])
    return [lesson(f"{label} beats the defaults, in nats per token on the held-out works",
                   paired_effects(final_loss_over_works_by_seed(run), defaults))
            for label, run in runs.items() if label != "the defaults"]


def prior_effect(run: dict) -> dict[str, float]:
    """How much lower a compact run's final held-out loss is with the plays prior than with the uniform one,
    on each work (the same weights evaluated both ways; for a run mixed with counts, its Transformer alone)."""
    other = run["final_loss_with_the_other_prior"]
    sign = 1 if other["prior"] == "uniform" else -1
    return {work: sign * (other["loss"][work] - curve[-1][1])
            for work, curve in run.get("curves_alone", run["curves"]).items()}


def mean_final_loss(run: dict) -> float:
    """The final held-out loss averaged over the works and over every seed the run was measured with."""
    finals = list(final_loss_over_works_by_seed(run).values())
    return sum(finals) / len(finals)


ALONE = "{label}: the Transformer alone"  # the row of a run mixed with counts that shows its model without them


def learning_speed_table(artefact: dict, marks=MARKS_S):
    """Per run: mean held-out loss over the works at each mark (the first seed's curves), the final loss averaged
    over the works and every seed, each work's bits per character at the last mark, tokens/s, steps, tokens
    trained on, parameters and head. A run mixed with counts has a second row, its Transformer alone; the count
    models of the training text close the table (no seconds: they are counted in one or two)."""
    end = marks[-1]

    def row(run: dict, curves: dict, finals: list[float]) -> dict:
        return {**{f"held-out loss at {mark} s": sum(loss_at(curve, mark) for curve in curves.values()) / len(curves)
                   for mark in marks},
                "final, mean over seeds": sum(finals) / len(finals),
                **{f"{work} at {end} s (bits/char)": bits_at(curve, end) for work, curve in curves.items()},
                "tokens/s": run["tokens_per_s"], "steps": run["steps"], "tokens trained on": run["tokens_seen"],
                "parameters": run["parameters"], "vocabulary": run["vocabulary"]}

    rows = {}
    for label, run in artefact["results"]["runs"].items():
        rows[label] = row(run, run["curves"], list(final_loss_over_works_by_seed(run).values()))
        if "curves_alone" in run:
            rows[ALONE.format(label=label)] = row(run, run["curves_alone"],
                                                  list(final_loss_over_works_by_seed(run, "final_loss_alone").values()))
    for name, counting in counting_rows(artefact).items():
        rows[name] = {**{f"held-out loss at {mark} s": counting["nats"] for mark in marks},
                      "final, mean over seeds": counting["nats"],
                      **{f"{work} at {end} s (bits/char)": bits for work, bits in counting["bits"].items()},
                      "vocabulary": "gpt2 (50,257 ids)"}
    return pd.DataFrame(rows).T


def counting_rows(artefact: dict) -> dict[str, dict]:
    """The unigram count model and the best order's (the best on average over the works), as table rows: mean
    nats per token over the works and each work's bits per character."""
    counting = artefact["results"].get("counting")
    if not counting:
        return {}
    works = list(counting)
    best_order = min(range(1, 6), key=lambda order: sum(counting[work]["orders"][str(order)]["nats_per_token"]
                                                        for work in works))
    rows = {}
    for order, name in ((1, "unigram counts"), (best_order, f"{count_label(best_order)} (the best count model)")):
        scores = [counting[work]["orders"][str(order)] for work in works]
        rows[name] = {"nats": sum(score["nats_per_token"] for score in scores) / len(scores),
                      "bits": {work: score["bits_per_char"] for work, score in zip(works, scores)}}
    return rows


DEFAULTS_GOAL_NATS = 0.5  # how far below the reference recipe the command line's defaults should end


def final_loss_by_seed(run: dict, work: str) -> dict[int, float]:
    """A run's final held-out loss on one work, per seed."""
    return {seed["seed"]: seed["final_loss"][work] for seed in run["by_seed"]}


def defaults_gains(artefact: dict) -> dict[str, tuple[float, float, int]]:
    """For each held-out work, how far below the reference recipe the command line's defaults end: the mean over
    the seeds both ran with of the per-seed gap, its seed-to-seed standard deviation (NaN with one seed) and the
    number of seeds."""
    runs = artefact["results"]["runs"]
    defaults, reference = runs[COMMAND_LINE], runs[REFERENCE]
    gains = {}
    for work in defaults["curves"]:
        gaps = paired_effects(final_loss_by_seed(defaults, work), final_loss_by_seed(reference, work))
        gains[work] = (*spread(gaps), len(gaps))
    return gains


COUNTING_FLOORS = ((600.0, 0.6), (120.0, 0.4))  # how far below the best count model the defaults end, by budget


def counting_floor(seconds: float) -> float | None:
    """The floor of the defaults' distance below counting at a budget of `seconds` (None below 120 s)."""
    return next((floor for budget, floor in COUNTING_FLOORS if seconds >= budget), None)


def below_counting(artefact: dict, label: str = COMMAND_LINE, key: str = "final_loss") -> dict[str, tuple]:
    """For each held-out work, how far below the best count model of that work a run ends: the mean over its seeds,
    the seed-to-seed standard deviation (NaN with one seed) and the number of seeds. key="final_loss_alone": its
    Transformer alone."""
    counting, run = artefact["results"]["counting"], artefact["results"]["runs"][label]
    return {work: (*spread([counting[work]["best"] - seed[key][work] for seed in run["by_seed"]]), len(run["by_seed"]))
            for work in counting}


def learning_speed_floors(artefact: dict) -> dict:
    """The floors, checked on the artefact at its last mark: packed + recipe against the starter's way (at least 1.5
    nats lower on the mean over the works, at least as many tokens/s), the compact head against the full one (at
    least 0.3 nats lower, at least 3x the tokens/s), the command line's defaults against the reference recipe on the
    same model (at least 0.5 nats lower on every held-out work, on average over the seeds), and the defaults against
    counting (at least COUNTING_FLOORS' nats below the best count model of every work). Each where its rows are."""
    runs, end = artefact["results"]["runs"], artefact["config"]["train_seconds"]
    floors = {}
    if {STARTER_WAY, PACKED_FULL, PACKED_COMPACT} <= set(runs):
        starter, full, compact = runs[STARTER_WAY], runs[PACKED_FULL], runs[PACKED_COMPACT]
        packed_gain = mean_loss_at(starter, end) - mean_loss_at(full, end)
        compact_gain = mean_loss_at(full, end) - mean_loss_at(compact, end)
        floors.update(packed_loss_gain=packed_gain, packed_speed_ratio=full["tokens_per_s"] / starter["tokens_per_s"],
                      compact_loss_gain=compact_gain, compact_speed_ratio=compact["tokens_per_s"] / full["tokens_per_s"],
                      packed_floor_met=packed_gain >= 1.5 and full["tokens_per_s"] >= starter["tokens_per_s"],
                      compact_floor_met=compact_gain >= 0.3 and compact["tokens_per_s"] >= 3 * full["tokens_per_s"])
    if {COMMAND_LINE, REFERENCE} <= set(runs):
        defaults_gain = {work: gain for work, (gain, _, _) in defaults_gains(artefact).items()}
        floors.update(defaults_loss_gain=defaults_gain,
                      defaults_floor_met=min(defaults_gain.values()) >= DEFAULTS_GOAL_NATS)
    floor = counting_floor(end)
    if COMMAND_LINE in runs and "counting" in artefact["results"] and floor is not None:
        margins = {work: margin for work, (margin, _, _) in below_counting(artefact).items()}
        floors.update(defaults_below_counting=margins, counting_floor=floor,
                      counting_floor_met=min(margins.values()) >= floor)
    return floors


def gain_with_noise(gain: float, noise: float, seeds: int) -> str:
    return f"{gain:.2f}" if seeds < 2 else f"{with_noise(gain, noise)} (over {seeds} seeds)"


def counting_sentence(artefact: dict) -> str:
    """How far below the best count model the command line's defaults end on each work, and their Transformer
    alone: the benchmark's headline."""
    runs, end = artefact["results"]["runs"], artefact["config"]["train_seconds"]
    if COMMAND_LINE not in runs or "counting" not in artefact["results"]:
        return ""
    counting = artefact["results"]["counting"]
    margins = ", ".join(f"{gain_with_noise(*margin)} on {work} ({count_label(counting[work]['best_order'])} "
                        f"{counting[work]['best']:.2f})" for work, margin in below_counting(artefact).items())
    sentence = (f"Beyond counting: after {end:g} s of training the command line's defaults end below the best count "
                f"model of the same plays by {margins} nats per token")
    if "curves_alone" in runs[COMMAND_LINE]:
        alone = ", ".join(f"{margin:.2f} on {work}" for work, (margin, _, _) in
                          below_counting(artefact, key="final_loss_alone").items())
        sentence += (f"; they mix their Transformer with counts, and the Transformer alone ends below counting by "
                     f"{alone}")
    floor = counting_floor(end)
    if floor is not None:
        met = min(margin for margin, _, _ in below_counting(artefact).values()) >= floor
        sentence += f" ({'at least' if met else 'short of'} the floor of {floor} on every work)"
    return sentence + "."


def learning_speed_summary(artefact: dict) -> str:
    """The benchmark's findings in a few sentences, computed from the artefact: counting first."""
    floors, end = learning_speed_floors(artefact), artefact["config"]["train_seconds"]
    sentences = [counting_sentence(artefact)]
    if "packed_loss_gain" in floors:
        sentences.append(
            f"After {end:g} s of training, packed streams with the modern recipe end "
            f"{floors['packed_loss_gain']:.2f} nats below the starter's way at {floors['packed_speed_ratio']:.1f}x "
            f"its tokens/s; a compact head ends {floors['compact_loss_gain']:.2f} nats below the full head at "
            f"{floors['compact_speed_ratio']:.1f}x its tokens/s.")
    if "defaults_loss_gain" in floors:
        gains = ", ".join(f"{gain_with_noise(*gain)} on {work}" for work, gain in defaults_gains(artefact).items())
        sentences.append(f"The command line's defaults end below the reference recipe on the same model by {gains} "
                         f"nats per token ({'at least' if floors['defaults_floor_met'] else 'short of'} the goal of "
                         f"{DEFAULTS_GOAL_NATS} on every work).")
    return " ".join(sentence for sentence in sentences if sentence) + compile_sentence(artefact)


def compile_sentence(artefact: dict) -> str:
    """What --compile does to the defaults at the benchmark's end, compile time included (none without the row)."""
    runs, end = artefact["results"]["runs"], artefact["config"]["train_seconds"]
    if COMMAND_LINE_COMPILED not in runs:
        return ""
    defaults, compiled = runs[COMMAND_LINE], runs[COMMAND_LINE_COMPILED]
    changes = [loss_at(compiled["curves"][work], end) - loss_at(curve, end)
               for work, curve in defaults["curves"].items()]
    ends = ", ".join(f"{abs(change):.2f} {'higher' if change > 0 else 'lower'} on {work}"
                     for work, change in zip(defaults["curves"], changes))
    return (f" With --compile, its compile time inside the {end:g} s, they train "
            f"{compiled['tokens_per_s'] / defaults['tokens_per_s']:.2f}x the tokens/s and end {ends} "
            "(nats per token).")


# ---------------------------------------------------------------- what counting alone gets


def count_models_table(artefact: dict) -> pd.DataFrame:
    """Each count model of count_models.json: nats per token on each held-out work in the benchmarks' windows and
    as one stream, bits per character in the windows, and the seconds to fit and score."""
    rows = {}
    for row in artefact["results"]["orders"]:
        cells = {}
        for work, scores in row["works"].items():
            cells[f"{work}, nats/token"] = scores["windows"]["nats_per_token"]
            cells[f"{work}, bits/char"] = scores["windows"]["bits_per_char"]
            cells[f"{work}, whole work"] = scores["whole"]["nats_per_token"]
        rows[row["label"]] = {**cells, "seconds to fit and score": row["fit_seconds"] + row["score_seconds"]}
    return pd.DataFrame(rows).T
