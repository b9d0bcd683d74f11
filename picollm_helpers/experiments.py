"""Section 8. Experiments: measured runs, each stored as one artefact with how it was made.

An artefact is one JSON file in artefacts/: name, created (UTC), git commit, device, torch
version, preset, config and results, written atomically so that an interrupted run never
leaves half a file behind.
"""

from __future__ import annotations

import json
import subprocess
import time
from datetime import datetime, timezone
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import torch

from .data import Corpus, InputError, write_json_atomically
from .device import describe_device, seed_everything
from .models import (KGramMLPSeqModel, build_model, compute_next_token_loss, count_parameters, family_of,
                     kgram_starter_loop_logits)
from .presets import ARTEFACTS_DIR, PROJECT_ROOT, TRANSFORMER_PRESETS, transformer_config
from .sampling import generate_tokens, nucleus_mask
from .training import cycle_batches, make_adam, save_checkpoint, targets_in, train_model

ARTEFACT_FIELDS = ("name", "created", "git_commit", "device", "torch_version", "preset", "config", "results")


def git_commit() -> str:
    """The bundle's current commit (with '+dirty' if files changed), or 'unknown' outside git."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10)

    try:
        head = git("rev-parse", "--short", "HEAD")
        # Artefacts rewritten by the run itself do not make the code dirty.
        dirty = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!artefacts").stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head.stdout.strip() + ("+dirty" if dirty else "") if head.returncode == 0 else "unknown"


def artefact_path(name: str, folder: str | Path | None = None) -> Path:
    return Path(folder or ARTEFACTS_DIR) / f"{name}.json"


def write_artefact(name: str, *, preset: str, config: dict, results, device, folder=None, path=None) -> Path:
    """Store a run's results with its provenance as artefacts/<name>.json (or at `path`)."""
    payload = {
        "name": name,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "device": describe_device(device),
        "torch_version": torch.__version__,
        "preset": preset,
        "config": config,
        "results": results,
    }
    return write_json_atomically(path or artefact_path(name, folder), payload)


def read_artefact(name_or_path: str | Path) -> dict:
    """An artefact by name (looked up in artefacts/) or by path."""
    path = Path(name_or_path)
    if path.suffix != ".json":
        path = artefact_path(str(name_or_path))
    if not path.is_file():
        raise InputError(f"No artefact at {path}: run the notebook that makes it (make run), or set REDRAW_ONLY = False.")
    return json.loads(path.read_text(encoding="utf-8"))


def history_rows(history) -> list[dict]:
    """A training history as JSON rows (NaN test losses become null)."""
    return json.loads(history.to_json(orient="records"))


def train_for_steps(model, corpus: Corpus, *, steps: int, batch_size: int, learning_rate: float, seed: int,
                    eval_every: int | None = None, name: str | None = None):
    """`steps` optimizer steps on batches of `batch_size` random training sequences, with held-out
    evaluation when the corpus has a test split.

    Every model trained this way with the same seed sees the same batches in the same order.
    """
    seed_everything(seed)
    loader = corpus.train_loader(batch_size, seed, num_draws=steps * batch_size)
    return train_model(model, loader, epochs=1, learning_rate=learning_rate,
                       test_loader=corpus.test_loader(batch_size), eval_every=eval_every, name=name)


def summarize_history(history, model) -> dict:
    """What a comparison table shows of one training run.

    Speed leaves out the first step, which also pays for one-off allocations (optimizer state).
    """
    tail = history["loss"].tail(max(1, len(history) // 5))
    timed = history.iloc[1:] if len(history) > 1 else history
    seconds = history["elapsed_s"].diff().fillna(history["elapsed_s"]).loc[timed.index]
    return {"final_loss": float(history["loss"].iloc[-1]), "final_loss_mean_last_fifth": float(tail.mean()),
            "average_loss": float(history["loss"].mean()),
            "tokens_per_s": float(timed["tokens"].sum() / seconds.sum()),
            "wall_s": float(history["elapsed_s"].iloc[-1]), "parameters": count_parameters(model)}


# ---------------------------------------------------------------- k-gram designs (notebook 02)

def time_starter_loop(model: KGramMLPSeqModel, loader, batches: int, learning_rate: float) -> dict:
    """Train the onehot model on `batches` batches through the starter's per-position loop; its speed."""
    optimizer = make_adam(model, learning_rate)
    tokens_seen, seconds = 0, 0.0
    for tokens, mask in cycle_batches(loader, batches):
        started = time.perf_counter()
        loss = compute_next_token_loss(kgram_starter_loop_logits(model, tokens), tokens, mask)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        seconds += time.perf_counter() - started
        tokens_seen += targets_in(mask)
    return {"batches": batches, "tokens": tokens_seen, "wall_s": seconds, "tokens_per_s": tokens_seen / seconds}


def kgram_design_comparison(corpus: Corpus, vocab_size: int, *, preset: str, device, k: int = 2,
                            embed_size: int = 64, num_inner_layers: int = 2, learning_rate: float = 1e-3,
                            batch_size: int = 32, steps: int = 20, seed: int = 0, timing_batches: int = 3,
                            data: str = "", checkpoint_dir: Path | None = None) -> dict:
    """Train the three k-gram designs alike and time the starter's loop against them.

    Every design gets the same hyperparameters, seed and batches. The loop trains the onehot
    design from the same initial weights on `timing_batches` batches. Writes
    artefacts/kgram_comparison.json and returns it; with checkpoint_dir, also saves each
    trained design there as kgram_<design>.pt.
    """
    shared = dict(vocab_size=vocab_size, k=k, embed_size=embed_size, num_inner_layers=num_inner_layers)
    designs, histories = {}, []
    for variant in KGramMLPSeqModel.VARIANTS:
        seed_everything(seed)
        model = build_model("kgram", **shared, variant=variant).to(device)
        history = train_for_steps(model, corpus, steps=steps, batch_size=batch_size, learning_rate=learning_rate,
                                  seed=seed, name=variant)
        designs[variant] = summarize_history(history, model)
        histories.append(history)
        if checkpoint_dir is not None:
            save_checkpoint(model, Path(checkpoint_dir) / f"kgram_{variant}.pt", trained_on=data, steps=steps)
    seed_everything(seed)
    loop_model = build_model("kgram", **shared, variant="onehot")
    loop = time_starter_loop(loop_model, corpus.train_loader(batch_size, seed, num_draws=timing_batches * batch_size),
                             timing_batches, learning_rate)
    for row in designs.values():
        row["speedup_over_loop"] = row["tokens_per_s"] / loop["tokens_per_s"]
    config = {**shared, "learning_rate": learning_rate, "batch_size": batch_size, "steps": steps, "seed": seed,
              "timing_batches": timing_batches, "data": data, "train_sequences": corpus.num_train,
              "loop_device": "cpu"}
    results = {"designs": designs, "starter_loop": loop,
               "history": [row for history in histories for row in history_rows(history)]}
    path = write_artefact("kgram_comparison", preset=preset, config=config, results=results, device=device)
    return read_artefact(path)


def kgram_comparison_table(artefact: dict):
    """The designs side by side, and the starter's loop as the last row, from kgram_comparison.json."""
    results = artefact["results"]
    table = pd.DataFrame(results["designs"]).T[["final_loss", "average_loss", "tokens_per_s", "wall_s",
                                                 "speedup_over_loop", "parameters"]]
    loop = results["starter_loop"]
    table.loc["onehot, starter's loop"] = [None, None, loop["tokens_per_s"], loop["wall_s"], 1.0,
                                           results["designs"]["onehot"]["parameters"]]
    return table.astype({"parameters": int})


KGRAM_WINDOWS = {True: "t-k+1..t (this bundle)", False: "t-k..t-1 (the starter)"}


def kgram_window_comparison(corpus: Corpus, vocab_size: int, *, preset: str, device, variant: str = "embedding",
                            k: int = 2, embed_size: int = 64, num_inner_layers: int = 2, learning_rate: float = 1e-3,
                            batch_size: int = 32, steps: int = 60, eval_every: int = 10, seed: int = 0,
                            data: str = "") -> dict:
    """Train one design with each context window, alike, and compare train and held-out loss.

    The logits at t predict token t+1; the starter's window t-k..t-1 hides token t from them.
    Writes artefacts/kgram_windows.json and returns it.
    """
    shared = dict(vocab_size=vocab_size, k=k, embed_size=embed_size, num_inner_layers=num_inner_layers,
                  variant=variant)
    windows, histories = {}, []
    for include_current, label in KGRAM_WINDOWS.items():
        seed_everything(seed)
        model = build_model("kgram", **shared, include_current=include_current).to(device)
        history = train_for_steps(model, corpus, steps=steps, batch_size=batch_size, learning_rate=learning_rate,
                                  seed=seed, eval_every=eval_every, name=label)
        windows[label] = {**summarize_history(history, model),
                          "final_test_loss": float(history["test_loss"].dropna().iloc[-1])}
        histories.append(history)
    config = {**shared, "learning_rate": learning_rate, "batch_size": batch_size, "steps": steps,
              "eval_every": eval_every, "seed": seed, "data": data, "train_sequences": corpus.num_train,
              "test_sequences": corpus.num_test}
    results = {"windows": windows, "history": [row for history in histories for row in history_rows(history)]}
    path = write_artefact("kgram_windows", preset=preset, config=config, results=results, device=device)
    return read_artefact(path)


# ---------------------------------------------------------------- Transformer presets (notebook 03)

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


def transformer_comparison(corpus: Corpus, vocab_size: int, *, preset: str, device, scale: dict, block_size: int,
                           steps: int, batch_size: int, learning_rate: float = 1e-3, seed: int = 0,
                           baselines: dict | None = None, cache_tokens: int = 200, prompt_ids: list[int] = (0,),
                           data: str = "", checkpoint_dir: Path | None = None) -> dict:
    """Train every Transformer preset (shrunk by `scale`) and the baselines alike; time the KV cache.

    `baselines` maps a name to (family, config) for the models to compare with, e.g. the LSTM
    and the best k-gram design. Every model gets the same batches, seed and learning rate.
    For each preset, greedy decoding of `cache_tokens` tokens is timed with and without the
    cache. Writes artefacts/transformer_metrics.json and returns it; with checkpoint_dir, also
    saves each trained Transformer there as transformer_<preset>.pt.
    """
    max_seq_len = max(block_size, len(prompt_ids) + cache_tokens)
    models = {name: ("transformer", asdict(transformer_config(name, scale, vocab_size=vocab_size,
                                                              max_seq_len=max_seq_len)))
              for name in TRANSFORMER_PRESETS}
    models.update(baselines or {})
    rows, histories, caches = {}, [], {}
    for name, (family, config) in models.items():
        seed_everything(seed)
        model = build_model(family, **config).to(device)
        history = train_for_steps(model, corpus, steps=steps, batch_size=batch_size, learning_rate=learning_rate,
                                  seed=seed, name=name)
        rows[name] = {"family": family, **summarize_history(history, model)}
        histories.append(history)
        if family == "transformer":
            caches[name] = cache_speedup(model, list(prompt_ids), cache_tokens)
            rows[name]["cache_speedup"] = caches[name]["speedup"]
            if checkpoint_dir is not None:
                save_checkpoint(model, Path(checkpoint_dir) / f"transformer_{name}.pt", trained_on=data,
                                steps=steps, scale=scale)
    config = {"scale": scale, "block_size": block_size, "steps": steps, "batch_size": batch_size,
              "learning_rate": learning_rate, "seed": seed, "data": data, "train_sequences": corpus.num_train,
              "cache_tokens": cache_tokens, "models": {name: {"family": family, **config}
                                                       for name, (family, config) in models.items()}}
    results = {"models": rows, "cache": caches,
               "history": [row for history in histories for row in history_rows(history)]}
    path = write_artefact("transformer_metrics", preset=preset, config=config, results=results, device=device)
    return read_artefact(path)


def transformer_metrics_table(artefact: dict) -> pd.DataFrame:
    columns = ["family", "average_loss", "final_loss", "tokens_per_s", "wall_s", "parameters", "cache_speedup"]
    return pd.DataFrame(artefact["results"]["models"]).T.reindex(columns=columns)


# ---------------------------------------------------------------- sampling diversity (notebook 04)

def sampling_setting_name(top_p: float | None) -> str:
    return "greedy" if top_p is None else f"p = {top_p:g}"


def distinct_n(samples: torch.Tensor, n: int) -> float:
    """Distinct n-grams over all n-grams of a batch of samples (num_samples, length): 1.0 when none repeats."""
    grams = samples.unfold(1, n, 1).reshape(-1, n)
    return len(grams.unique(dim=0)) / len(grams)


@torch.no_grad()
def nucleus_sizes_along(model, prompt_ids: list[int], continuations: torch.Tensor, p: float,
                        temperature: float = 1.0) -> torch.Tensor:
    """How many tokens the top-p nucleus held at each step of each continuation (num_samples, length).

    One forward pass over prompt + continuations gives the distribution every new token was drawn from.
    """
    device = next(model.parameters()).device
    prompt = torch.tensor(prompt_ids, dtype=torch.long, device=device).view(-1, 1).expand(-1, len(continuations))
    logits = model(torch.cat([prompt, continuations.T.to(device)]))[len(prompt_ids) - 1:-1]
    return nucleus_mask((logits.float() / temperature).softmax(dim=-1), p).sum(dim=-1).T.cpu()


def measure_sampling_setting(model, enc, prompt: str, top_p: float | None, seeds: list[int], max_new_tokens: int,
                             temperature: float) -> dict:
    """Draw one sample per seed and measure how varied and how likely the samples are."""
    prompt_ids = enc.encode_ordinary(prompt)
    generations = [generate_tokens(model, prompt_ids, max_new_tokens, top_p, temperature, seed=seed) for seed in seeds]
    tokens = torch.tensor([generation.tokens for generation in generations])
    logprobs = torch.tensor([generation.logprobs for generation in generations])
    # Greedy decoding draws from a nucleus of one token: the argmax.
    sizes = torch.ones_like(tokens) if top_p is None else nucleus_sizes_along(model, prompt_ids, tokens, top_p,
                                                                              temperature)
    texts = [prompt + enc.decode(sample) for sample in tokens.tolist()]
    return {"setting": sampling_setting_name(top_p), "top_p": top_p, "distinct_1": distinct_n(tokens, 1),
            "distinct_2": distinct_n(tokens, 2), "mean_logprob": float(logprobs.mean()),
            "mean_nucleus_size": float(sizes.double().mean()), "distinct_samples": len(set(texts)),
            "samples": texts}


def sampling_diversity(models: dict, enc, *, preset: str, device, prompt: str = "Once upon a",
                       top_ps=(None, 0.8, 0.95, 1.0), num_samples: int = 8, max_new_tokens: int = 20,
                       temperature: float = 1.0, seed: int = 0) -> dict:
    """Sample every model num_samples times (seeds seed, seed + 1, ...) at each top-p, greedy for None.

    Per model and setting it records distinct-1 and distinct-2 (unique n-grams over all n-grams of
    the samples), the mean log-probability of the sampled tokens under the model's full
    distribution, and the mean nucleus size. Writes artefacts/sampling_diversity.json and returns it.
    """
    if num_samples < 1 or max_new_tokens < 2:
        raise ValueError(f"num_samples={num_samples} must be at least 1 and max_new_tokens={max_new_tokens} "
                         "at least 2 (distinct-2 needs a bigram).")
    seeds = list(range(seed, seed + num_samples))
    rows = [{"model": name, **measure_sampling_setting(model, enc, prompt, top_p, seeds, max_new_tokens, temperature)}
            for name, model in models.items() for top_p in top_ps]
    model_info = {name: {"family": family_of(model), "parameters": count_parameters(model),
                         "trained": getattr(model, "checkpoint_metadata", {})} for name, model in models.items()}
    config = {"prompt": prompt, "top_ps": list(top_ps), "num_samples": num_samples, "seeds": seeds,
              "max_new_tokens": max_new_tokens, "temperature": temperature, "models": model_info}
    path = write_artefact("sampling_diversity", preset=preset, config=config, results={"rows": rows}, device=device)
    return read_artefact(path)
