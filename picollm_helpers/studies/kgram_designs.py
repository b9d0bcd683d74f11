"""Notebook 02's study: three k-gram MLP designs, the starter's per-position loop, and two context windows.

The designs train alike on the course notes' configuration and are timed against the starter's
loop (as the starter runs it, in a process of its own, and in this process). Then, on real
text, which design learns best and what the starter's context window costs, measured on the
standard held-out work.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
import torch

from ..artefacts import corpus_size, history_rows, read_artefact, summarize_history, write_artefact
from ..device import KEEP_FREED_MEMORY_VARIABLE, seed_everything
from ..drawing import plot_history_panels, plot_loss_curves, plot_speed_bars, slide_figure, subplots
from ..models import KGramConfig, KGramMLPSeqModel, compute_next_token_loss, kgram_starter_loop_logits, kgram_windows
from ..training import STARTER_RECIPE, Recipe, TrainingRun, make_optimizer, save_checkpoint, targets_in, train_model
from .lessons import count_baselines


def starter_loop_batches(corpus, *, batches: int, batch_size: int,
                         seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The first `batches` (tokens, mask) training batches of a corpus: what the starter's loop is timed on."""
    return list(itertools.islice(corpus.train_batches(batch_size, seed), batches))


def time_starter_loop(model: KGramMLPSeqModel, batches: list, recipe: Recipe = STARTER_RECIPE) -> dict:
    """Train the onehot model on the batches through the starter's per-position loop; its speed."""
    optimizer = make_optimizer(model, recipe)
    tokens_seen, seconds, losses = 0, 0.0, []
    for tokens, mask in batches:
        started = time.perf_counter()
        loss = compute_next_token_loss(kgram_starter_loop_logits(model, tokens), tokens, mask)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        seconds += time.perf_counter() - started
        tokens_seen += targets_in(tokens, mask)
        losses.append(loss.item())
    return {"batches": len(batches), "tokens": tokens_seen, "wall_s": seconds, "tokens_per_s": tokens_seen / seconds,
            "losses": losses}


def time_starter_loop_as_the_starter_runs(model: KGramMLPSeqModel, batches: list,
                                          recipe: Recipe = STARTER_RECIPE) -> dict:
    """time_starter_loop in a Python process of its own, with glibc's allocator at its defaults.

    Importing the bundle makes glibc keep freed memory for reuse (keep_freed_memory_for_reuse),
    which speeds up the starter's loop as well as the bundle's training step; the starter
    never did that. The model's initial weights and the batches reach the other process
    through a temporary file; this model is left untrained.
    """
    with tempfile.TemporaryDirectory() as folder:
        job = Path(folder) / "starter_loop.pt"
        torch.save({"config": model.config, "weights": model.state_dict(), "batches": batches,
                    "recipe": asdict(recipe), "threads": torch.get_num_threads()}, job)
        finished = subprocess.run([sys.executable, "-m", "picollm_helpers.starter_loop", str(job)],
                                  capture_output=True, text=True,
                                  env={**os.environ, KEEP_FREED_MEMORY_VARIABLE: "0"})
    if finished.returncode != 0:
        raise RuntimeError(f"Timing the starter's loop in a process of its own failed:\n{finished.stderr[-3000:]}")
    return json.loads(finished.stdout.strip().splitlines()[-1])


def shared_by_designs(design: KGramConfig) -> dict:
    """What every design of a comparison shares, as its artefact records it: the vocabulary, k, width and depth."""
    return {name: getattr(design, name) for name in ("vocab_size", "k", "embed_size", "num_inner_layers")}


@dataclass(frozen=True)
class LoopTiming:
    """How the starter's loop is timed against the designs: on `batches` batches of `batch_size` windows (None: the
    designs' batch), and the chunk sizes (positions processed at once) the onehot design is timed at, the first
    every design's."""

    batches: int = 3
    batch_size: int | None = None
    chunk_sizes: tuple[int, ...] = (1024, 8)


def kgram_design_comparison(corpus, design: KGramConfig, run: TrainingRun, *, preset: str, device,
                            timing: LoopTiming = LoopTiming(), data: str = "") -> dict:
    """Train the three k-gram designs alike, as `run` says, and time the starter's loop against them.

    Every design gets the same recipe, seed and batches, through the training step users get
    (train_model). The onehot design is also timed at each of the timing's chunk sizes after the first
    (positions processed at once), and computing every position's window, as the loop does
    (distinct_windows=False: what vectorising alone gains). The starter's loop trains the onehot
    design from the same initial weights on the timing's batches, twice: as the starter runs (a process
    of its own, glibc's default allocator; the speed-ups are over this one) and in this process.
    Writes artefacts/kgram_comparison.json and returns it.
    """
    chunk_sizes, seed, recipe = timing.chunk_sizes, run.seed, run.recipe
    batch_size, steps = run.batch_size, run.budget.max_steps
    runs = [(variant, variant, chunk_sizes[0], True) for variant in KGramMLPSeqModel.VARIANTS]
    runs += [(f"onehot, chunk {chunk}", "onehot", chunk, True) for chunk in chunk_sizes[1:]]
    runs += [(EVERY_WINDOW, "onehot", chunk_sizes[0], False)]
    designs, histories = {}, []
    for label, variant, chunk, distinct in runs:
        seed_everything(seed)
        model = KGramMLPSeqModel(config=design, variant=variant, chunk_size=chunk, distinct_windows=distinct).to(device)
        history = train_model(model, corpus, run, name=label)
        designs[label] = {**summarize_history(history, model), "chunk_size": chunk, "distinct_windows": distinct}
        histories.append(history)
    seed_everything(seed)
    loop_model = KGramMLPSeqModel(config=design, variant="onehot")
    timing_batch_size = timing.batch_size or batch_size
    batches = starter_loop_batches(corpus, batches=timing.batches, batch_size=timing_batch_size, seed=seed)
    loop = time_starter_loop_as_the_starter_runs(loop_model, batches, recipe)
    loop_here = time_starter_loop(loop_model, batches, recipe)
    for row in designs.values():
        row["speedup_over_loop"] = row["tokens_per_s"] / loop["tokens_per_s"]
        row["speedup_over_loop_in_this_process"] = row["tokens_per_s"] / loop_here["tokens_per_s"]
    config = {**shared_by_designs(design), "recipe": asdict(recipe), "batch_size": batch_size, "steps": steps,
              "seed": seed, "timing_batches": timing.batches, "timing_batch_size": timing_batch_size,
              "chunk_sizes": list(chunk_sizes), "data": data,
              **corpus_size(corpus), "loop_device": "cpu",
              "starter_loop": "its own process, glibc's default allocator, as the starter runs",
              "starter_loop_in_this_process": "this process, with the bundle's allocator setting"}
    windows = window_counts(itertools.islice(corpus.train_batches(batch_size, seed), steps), design.k)
    results = {"designs": designs, "starter_loop": loop, "starter_loop_in_this_process": loop_here, "windows": windows,
               "history": [row for history in histories for row in history_rows(history)]}
    path = write_artefact("kgram_comparison", preset=preset, config=config, results=results, device=device)
    return read_artefact(path)


EVERY_WINDOW = "onehot, every window"  # the onehot design computing each position's window, as the loop does


def window_counts(batches, k: int) -> dict:
    """The windows the batches predict from, and how many of them are distinct within their batch: the
    work a k-gram model's distinct windows leave (KGramMLPSeqModel.next_token_loss)."""
    counts = {"positions": 0, "distinct": 0}
    for tokens, _ in batches:
        windows = kgram_windows(tokens[:-1], k).reshape(-1, k)
        counts["positions"] += len(windows)
        counts["distinct"] += len(torch.unique(windows, dim=0))
    return counts


STARTER_LOOP_LABELS = {"onehot, starter's loop (as the starter runs)": "starter_loop",
                       "onehot, starter's loop (in this process)": "starter_loop_in_this_process"}


def kgram_comparison_table(artefact: dict):
    """The designs side by side, and the starter's loop timed both ways as the last rows, from
    kgram_comparison.json. Each speed-up column divides a row's tokens/s by one of the loop's."""
    results = artefact["results"]
    columns = ["final_loss", "average_loss", "tokens_per_s", "wall_s", "speedup_over_loop",
               "speedup_over_loop_in_this_process", "parameters"]
    table = pd.DataFrame(results["designs"]).T[columns]
    parameters = results["designs"]["onehot"]["parameters"]
    for label, loop in STARTER_LOOP_LABELS.items():
        speed = results[loop]["tokens_per_s"]
        table.loc[label] = [None, None, speed, results[loop]["wall_s"], results["starter_loop"]["tokens_per_s"] / speed,
                            results["starter_loop_in_this_process"]["tokens_per_s"] / speed, parameters]
    return table.astype({"parameters": int})


KGRAM_WINDOWS = {True: "t-k+1..t (this bundle)", False: "t-k..t-1 (the starter)"}


@dataclass(frozen=True)
class KgramBudget:
    """How long each k-gram design trains on real text, and how often it is evaluated, on one run preset."""

    steps: int
    eval_every: int


KGRAM_BUDGETS = {"quick": KgramBudget(steps=6, eval_every=3), "cpu": KgramBudget(steps=1_200, eval_every=100),
                 "gpu": KgramBudget(steps=3_000, eval_every=200)}


def kgram_real_text(corpus, heldout, vocab_ids, design: KGramConfig, run: TrainingRun, *, preset: str, device,
                    checkpoint_dir: Path | None = None) -> dict:
    """Every design with this bundle's context window, and the embedding design with the starter's, trained
    alike on real text (packed, the bundle's recipe, as `run` says) and measured on a held-out set, beside the
    count models of the same text.

    The logits at t predict token t+1; the starter's window t-k..t-1 hides token t from them. A
    k-gram MLP is a neural (k+1)-gram model: it reads the same k tokens as a (k+1)-gram count
    model, its baseline (each run records how far below it ends). The design with the lowest final
    held-out loss is the one notebook 03 races. Writes artefacts/kgram_real_text.json and returns it;
    with checkpoint_dir, also saves each design (this bundle's window) there as kgram_<design>.pt,
    for the sampling lab.
    """
    k, steps = design.k, run.budget.max_steps
    runs = [(variant, True) for variant in KGramMLPSeqModel.VARIANTS] + [("embedding", False)]
    rows, histories = {}, []
    for variant, include_current in runs:
        label = f"{variant}, {KGRAM_WINDOWS[include_current]}"
        seed_everything(run.seed)
        model = KGramMLPSeqModel(config=design, variant=variant, include_current=include_current,
                            vocab_ids=vocab_ids).to(device)
        history = train_model(model, corpus, run, heldout=heldout, name=label)
        final = history.dropna(subset=["test_loss"]).iloc[-1]
        rows[label] = {"variant": variant, "window": KGRAM_WINDOWS[include_current],
                       **summarize_history(history, model), "final_test_loss": float(final["test_loss"]),
                       "final_test_bpc": float(final["test_bpc"])}
        histories.append(history)
        if checkpoint_dir is not None and include_current:
            save_checkpoint(model, Path(checkpoint_dir) / f"kgram_{variant}.pt", trained_on="the plays", steps=steps)
    best = min((row for row in rows.values() if row["window"] == KGRAM_WINDOWS[True]),
               key=lambda row: row["final_test_loss"])["variant"]
    counting = {**count_baselines(corpus, heldout), "same_k_order": k + 1}
    same_k = counting["orders"][str(k + 1)]["nats_per_token"]
    for row in rows.values():
        row["below_same_k_counts_by"] = same_k - row["final_test_loss"]
    config = {**shared_by_designs(design), "recipe": asdict(run.recipe), "batch_size": run.batch_size, "steps": steps,
              "eval_every": run.evaluation.every, "seed": run.seed, "data": "the plays", **corpus_size(corpus),
              "heldout": heldout.heldout[0].name, "heldout_tokens": heldout.num_heldout_tokens}
    results = {"runs": rows, "best_design": best, "counting": counting,
               "history": [row for history in histories for row in history_rows(history)]}
    return read_artefact(write_artefact("kgram_real_text", preset=preset, config=config, results=results,
                                        device=device))


# ---------------------------------------------------------------- the figures


@slide_figure
def plot_kgram_comparison(artefact: dict):
    """Loss against step for each design, and tokens/s of each design and of the starter's loop."""
    results = artefact["results"]
    fig, (left, right) = subplots(1, 2)
    plot_loss_curves(pd.DataFrame(results["history"]), ax=left, title="training loss, same batches and seed")
    names = [*results["designs"], "starter's loop,\nas the starter runs", "starter's loop,\nin this process"]
    speeds = [row["tokens_per_s"] for row in results["designs"].values()] + [
        results["starter_loop"]["tokens_per_s"], results["starter_loop_in_this_process"]["tokens_per_s"]]
    plot_speed_bars(names, speeds, ax=right, title="training speed")
    fig.suptitle(f"k-gram MLP designs ({artefact['preset']} preset, {artefact['device']})")
    return fig


@slide_figure
def plot_kgram_real_text(artefact: dict):
    """Training and held-out loss of each k-gram design and context window on real text, from kgram_real_text.json."""
    config, results = artefact["config"], artefact["results"]
    return plot_history_panels(pd.DataFrame(results["history"]),
                               f"k-gram designs and windows on the plays, {config['heldout']} held out "
                               f"({artefact['preset']} preset)", test_loss=True, counting=results.get("counting"),
                               which=("unigram", "same_k", "best"))
