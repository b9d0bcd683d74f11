"""Section 8. Experiments: measured runs, each stored as one artefact with how it was made.

An artefact is one JSON file in artefacts/: name, created (UTC), git commit, device, torch
version, preset, config and results, written atomically so that an interrupted run never
leaves half a file behind.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from numpy.lib.stride_tricks import sliding_window_view

from .artefacts import history_rows, read_artefact, write_artefact
from .device import KEEP_FREED_MEMORY_VARIABLE, seed_everything
from .models import (KGramMLPSeqModel, build_model, compute_next_token_loss, count_parameters, describe_vocabulary,
                     family_of, kgram_starter_loop_logits)
from .heads import vocab_ids_for
from .corpus import build_corpus
from .presets import (CUSTOM_CORPUS, TRANSFORMER_PRESETS, InputError,
                      RunPreset, transformer_config)
from .sampling import generate_tokens, nucleus_mask
from .training import STARTER_RECIPE, Recipe, make_optimizer, save_checkpoint, targets_in, train_model

def corpus_size(corpus) -> dict:
    """How much text a corpus holds, for an artefact's config."""
    if corpus.packed:
        return {"packing": True, "train_tokens": corpus.num_train_tokens, "heldout_tokens": corpus.num_heldout_tokens}
    return {"packing": False, "train_sequences": corpus.num_train, "test_sequences": corpus.num_test}


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
            "wall_s": float(history["elapsed_s"].iloc[-1]), "parameters": count_parameters(model), **history.attrs}


# ---------------------------------------------------------------- what a sample reads like

WORD_LIST = Path("/usr/share/dict/words")  # Debian's wamerican


def words_of(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


def word_share(text: str, words: set[str]) -> float:
    """The share of a text's words found in a set of words: a corpus's own, or a word list's."""
    found = words_of(text)
    return sum(word in words for word in found) / len(found) if found else math.nan


def ngrams(ids, n: int) -> set[tuple]:
    ids = np.asarray(ids, dtype=np.int64)
    return set(map(tuple, sliding_window_view(ids, n).tolist())) if len(ids) >= n else set()


def copied_ngram_fraction(generated: list[int], training, n: int = 4) -> float:
    """The share of the generated token n-grams that occur verbatim in the training text (streams or sequences)."""
    seen = set().union(*(ngrams(stream, n) for stream in training))
    grams = [tuple(generated[i:i + n]) for i in range(len(generated) - n + 1)]
    return sum(gram in seen for gram in grams) / len(grams) if grams else math.nan


def english_words(path: str | Path = WORD_LIST) -> set[str]:
    """The lowercase words of a word list, one a line (Debian's wamerican by default)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"No word list at {path}: `apt-get install wamerican` installs one (.ci/run does), "
                         "or give the path of any one-word-a-line list.")
    return {line.strip().lower() for line in path.read_text(encoding="utf-8", errors="ignore").splitlines()
            if line.strip()}


# ---------------------------------------------------------------- k-gram designs (notebook 02)

def starter_loop_batches(corpus, *, batches: int, batch_size: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
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


def kgram_design_comparison(corpus, vocab_size: int, *, preset: str, device, k: int = 2, embed_size: int = 64,
                            num_inner_layers: int = 2, recipe: Recipe = STARTER_RECIPE, batch_size: int = 32,
                            steps: int = 20, seed: int = 0, timing_batches: int = 3, chunk_sizes=(1024, 8),
                            data: str = "", checkpoint_dir: Path | None = None) -> dict:
    """Train the three k-gram designs alike and time the starter's loop against them.

    Every design gets the same recipe, seed and batches, through the training step users get
    (train_model). The onehot design is also timed at each of `chunk_sizes` after the first
    (positions processed at once). The starter's loop trains the onehot design from the same
    initial weights on `timing_batches` batches, twice: as the starter runs (a process of its
    own, glibc's default allocator; the speed-ups are over this one) and in this process.
    Writes artefacts/kgram_comparison.json and returns it;
    with checkpoint_dir, also saves each trained design there as kgram_<design>.pt.
    """
    shared = dict(vocab_size=vocab_size, k=k, embed_size=embed_size, num_inner_layers=num_inner_layers)
    runs = [(variant, variant, chunk_sizes[0]) for variant in KGramMLPSeqModel.VARIANTS]
    runs += [(f"onehot, chunk {chunk}", "onehot", chunk) for chunk in chunk_sizes[1:]]
    designs, histories = {}, []
    for label, variant, chunk in runs:
        seed_everything(seed)
        model = build_model("kgram", **shared, variant=variant, chunk_size=chunk).to(device)
        history = train_model(model, corpus, max_steps=steps, batch_size=batch_size, recipe=recipe, seed=seed,
                              name=label)
        designs[label] = {**summarize_history(history, model), "chunk_size": chunk}
        histories.append(history)
        if checkpoint_dir is not None and label == variant:
            save_checkpoint(model, Path(checkpoint_dir) / f"kgram_{variant}.pt", trained_on=data, steps=steps)
    seed_everything(seed)
    loop_model = build_model("kgram", **shared, variant="onehot")
    batches = starter_loop_batches(corpus, batches=timing_batches, batch_size=batch_size, seed=seed)
    loop = time_starter_loop_as_the_starter_runs(loop_model, batches, recipe)
    loop_here = time_starter_loop(loop_model, batches, recipe)
    for row in designs.values():
        row["speedup_over_loop"] = row["tokens_per_s"] / loop["tokens_per_s"]
        row["speedup_over_loop_in_this_process"] = row["tokens_per_s"] / loop_here["tokens_per_s"]
    config = {**shared, "recipe": asdict(recipe), "batch_size": batch_size, "steps": steps, "seed": seed,
              "timing_batches": timing_batches, "chunk_sizes": list(chunk_sizes), "data": data,
              **corpus_size(corpus), "loop_device": "cpu",
              "starter_loop": "its own process, glibc's default allocator, as the starter runs",
              "starter_loop_in_this_process": "this process, with the bundle's allocator setting"}
    results = {"designs": designs, "starter_loop": loop, "starter_loop_in_this_process": loop_here,
               "history": [row for history in histories for row in history_rows(history)]}
    path = write_artefact("kgram_comparison", preset=preset, config=config, results=results, device=device)
    return read_artefact(path)


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


def kgram_window_comparison(corpus, vocab_size: int, *, preset: str, device, variant: str = "embedding",
                            k: int = 2, embed_size: int = 64, num_inner_layers: int = 2, recipe: Recipe = Recipe(),
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
        history = train_model(model, corpus, max_steps=steps, batch_size=batch_size, recipe=recipe, seed=seed,
                              eval_every=eval_every, name=label)
        windows[label] = {**summarize_history(history, model),
                          "final_test_loss": float(history["test_loss"].dropna().iloc[-1])}
        histories.append(history)
    config = {**shared, "recipe": asdict(recipe), "batch_size": batch_size, "steps": steps,
              "eval_every": eval_every, "seed": seed, "data": data, **corpus_size(corpus)}
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


def transformer_comparison(corpus, vocab_size: int, *, preset: str, device, scale: dict, steps: int,
                           batch_size: int, recipe: Recipe = Recipe(), seed: int = 0,
                           vocab_ids: list[int] | None = None, grad_accum_steps: int = 1,
                           baselines: dict | None = None, cache_tokens: int = 200, prompt_ids: list[int] = (0,),
                           data: str = "", checkpoint_dir: Path | None = None) -> dict:
    """Train every Transformer preset (shrunk by `scale`) and the baselines alike; time the KV cache.

    `baselines` maps a name to (family, config) for the models to compare with, e.g. the LSTM
    and the best k-gram design. Every model gets the same batches, seed, recipe and vocabulary
    (`vocab_ids`: a compact head's ids, or None for the full one).
    For each preset, greedy decoding of `cache_tokens` tokens is timed with and without the
    cache. Writes artefacts/transformer_metrics.json and returns it; with checkpoint_dir, also
    saves each trained Transformer there as transformer_<preset>.pt.
    """
    max_seq_len = max(corpus.block_size, len(prompt_ids) + cache_tokens)
    models = {name: ("transformer", asdict(transformer_config(name, scale, vocab_size=vocab_size,
                                                              max_seq_len=max_seq_len)))
              for name in TRANSFORMER_PRESETS}
    models.update(baselines or {})
    rows, histories, caches = {}, [], {}
    for name, (family, config) in models.items():
        seed_everything(seed)
        model = build_model(family, **config, vocab_ids=vocab_ids).to(device)
        history = train_model(model, corpus, max_steps=steps, batch_size=batch_size, recipe=recipe, seed=seed,
                              grad_accum_steps=grad_accum_steps, name=name)
        rows[name] = {"family": family, **summarize_history(history, model)}
        histories.append(history)
        if family == "transformer":
            caches[name] = cache_speedup(model, list(prompt_ids), cache_tokens)
            rows[name]["cache_speedup"] = caches[name]["speedup"]
            if checkpoint_dir is not None:
                save_checkpoint(model, Path(checkpoint_dir) / f"transformer_{name}.pt", trained_on=data,
                                steps=steps, scale=scale)
    config = {"scale": scale, "block_size": corpus.block_size, "steps": steps, "batch_size": batch_size,
              "recipe": asdict(recipe), "seed": seed, "data": data, **corpus_size(corpus),
              "vocabulary": describe_vocabulary(model), "cache_tokens": cache_tokens,
              "models": {name: {"family": family, **config} for name, (family, config) in models.items()}}
    results = {"models": rows, "cache": caches,
               "history": [row for history in histories for row in history_rows(history)]}
    path = write_artefact("transformer_metrics", preset=preset, config=config, results=results, device=device)
    return read_artefact(path)


def transformer_metrics_table(artefact: dict) -> pd.DataFrame:
    columns = ["family", "average_loss", "final_loss", "tokens_per_s", "wall_s", "parameters", "cache_speedup"]
    return pd.DataFrame(artefact["results"]["models"]).T.reindex(columns=columns)


# ---------------------------------------------------------------- a Transformer that writes (notebooks 03 and 04)

WRITER_SETTINGS = {"greedy": None, "p = 0.5": 0.5, "p = 1.0": 1.0}


def reading_words(corpus, enc) -> tuple[set[str], str]:
    """The words a sample's words are checked against: Debian's word list when installed, else the
    training text's own words. Returns the set and what it is."""
    if WORD_LIST.is_file():
        return english_words(), f"{WORD_LIST} (Debian's wamerican)"
    text = " ".join(enc.decode(np.asarray(stream).tolist()) for stream in corpus.train_streams())
    return set(words_of(text)), f"the training text's own words (no word list at {WORD_LIST})"


def measure_writing(model, enc, prompt: str, seeds, max_new_tokens: int, words: set[str]) -> dict:
    """Per setting (greedy, p = 0.5, p = 1.0): the samples, the share of their words that are words,
    distinct-2 across the samples and how many differ."""
    measures = {}
    prompt_ids = enc.encode_ordinary(prompt)
    for setting, top_p in WRITER_SETTINGS.items():
        generations = [generate_tokens(model, prompt_ids, max_new_tokens, top_p, seed=seed) for seed in seeds]
        texts = [enc.decode(generation.tokens) for generation in generations]
        tokens = torch.tensor([generation.tokens for generation in generations])
        measures[setting] = {"samples": [prompt + text for text in texts],
                             "word_share": float(np.nanmean([word_share(text, words) for text in texts])),
                             "distinct_2": distinct_n(tokens, 2), "distinct_samples": len(set(texts))}
    return measures


def train_writer(enc, run: RunPreset, *, device, tinystories_path=None, input_dir: str = CUSTOM_CORPUS,
                 prompt: str = "Once upon a", seeds=range(5), max_new_tokens: int = 30, test_fraction: float = 0.1,
                 seed: int = 0, checkpoint_dir: Path | None = None) -> dict:
    """Train the run preset's Transformer long enough to write, and measure what it writes.

    It trains on the custom corpus, and on TinyStories for half the windows when the hub or a
    local copy (`tinystories_path`) gives any, with the preset's vocabulary, for
    run.writer_steps steps. Its greedy, p = 0.5 and p = 1.0 continuations of the prompt
    (one per seed) are measured: the share of their words found in the word list, and how much
    they vary. Writes artefacts/writer.json and returns it; with checkpoint_dir, also saves the
    model there as transformer_writer.pt, the model the sampling lab opens on.
    """
    corpus = build_corpus(enc, run.block_size, base_weight=0.5, tinystories_stories=run.tinystories_stories,
                          tinystories_path=tinystories_path, input_dir=input_dir, test_fraction=test_fraction,
                          seed=seed)
    seed_everything(seed)
    config = replace(run.transformer, max_seq_len=max(run.block_size, len(enc.encode(prompt)) + max_new_tokens))
    model = build_model("transformer", **asdict(config),
                        vocab_ids=vocab_ids_for(corpus, run.vocab, run.min_count)).to(device)
    history = train_model(model, corpus, max_steps=run.writer_steps, batch_size=run.batch_size, seed=seed,
                          grad_accum_steps=run.grad_accum_steps, eval_every=max(1, run.writer_steps // 10),
                          name="the writer")
    words, word_list = reading_words(corpus, enc)
    writing = measure_writing(model, enc, prompt, list(seeds), max_new_tokens, words)
    data = ", ".join(stream.name for stream in corpus.train)
    if checkpoint_dir is not None:
        save_checkpoint(model, Path(checkpoint_dir) / "transformer_writer.pt", trained_on=data,
                        steps=run.writer_steps)
    config = {"transformer": asdict(run.transformer), "vocabulary": describe_vocabulary(model),
              "steps": run.writer_steps, "batch_size": run.batch_size, "block_size": run.block_size,
              "recipe": asdict(Recipe()), "data": data, **corpus_size(corpus), "prompt": prompt,
              "seeds": list(seeds), "max_new_tokens": max_new_tokens, "word_list": word_list, "seed": seed}
    results = {"summary": {**summarize_history(history, model),
                           "final_test_loss": float(history["test_loss"].dropna().iloc[-1])},
               "writing": writing, "history": history_rows(history)}
    path = write_artefact("writer", preset=run.name, config=config, results=results, device=device)
    return read_artefact(path)


@torch.no_grad()
def record_attention(model, enc, prompt: str, *, label: str, preset: str, device) -> dict:
    """Every head's attention weights in a Transformer's last block over the prompt's tokens.
    Writes artefacts/attention_map.json and returns it."""
    ids = enc.encode_ordinary(prompt)
    maps = model.attention_maps(torch.tensor(ids, device=next(model.parameters()).device))
    config = {"model": label, "prompt": prompt, "block": len(maps)}
    results = {"tokens": [enc.decode([i]) for i in ids], "weights": maps[-1].cpu().tolist()}
    return read_artefact(write_artefact("attention_map", preset=preset, config=config, results=results, device=device))


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
    log_probs = model.log_probs(torch.cat([prompt, continuations.T.to(device)]))[len(prompt_ids) - 1:-1]
    return nucleus_mask((log_probs / temperature).softmax(dim=-1), p).sum(dim=-1).T.cpu()


def measure_sampling_setting(model, enc, prompt: str, top_p: float | None, seeds: list[int], max_new_tokens: int,
                             temperature: float, words: set[str]) -> dict:
    """Draw one sample per seed and measure how varied, how likely and how wordlike the samples are."""
    prompt_ids = enc.encode_ordinary(prompt)
    generations = [generate_tokens(model, prompt_ids, max_new_tokens, top_p, temperature, seed=seed) for seed in seeds]
    tokens = torch.tensor([generation.tokens for generation in generations])
    logprobs = torch.tensor([generation.logprobs for generation in generations])
    # Greedy decoding draws from a nucleus of one token: the argmax.
    sizes = torch.ones_like(tokens) if top_p is None else nucleus_sizes_along(model, prompt_ids, tokens, top_p,
                                                                              temperature)
    continuations = [enc.decode(sample) for sample in tokens.tolist()]
    return {"setting": sampling_setting_name(top_p), "top_p": top_p, "distinct_1": distinct_n(tokens, 1),
            "distinct_2": distinct_n(tokens, 2), "mean_logprob": float(logprobs.mean()),
            "mean_nucleus_size": float(sizes.double().mean()), "distinct_samples": len(set(continuations)),
            "word_share": float(np.nanmean([word_share(text, words) for text in continuations])),
            "samples": [prompt + text for text in continuations]}


def sampling_diversity(models: dict, enc, *, preset: str, device, words: set[str], word_list: str,
                       prompt: str = "Once upon a", top_ps=(None, 0.5, 0.8, 0.95, 1.0), num_samples: int = 8,
                       max_new_tokens: int = 20, temperature: float = 1.0, seed: int = 0) -> dict:
    """Sample every model num_samples times (seeds seed, seed + 1, ...) at each top-p, greedy for None.

    Per model and setting it records distinct-1 and distinct-2 (unique n-grams over all n-grams of
    the samples), the mean log-probability of the sampled tokens under the model's full
    distribution, the mean nucleus size, and the share of the samples' words found in `words`
    (described by `word_list`). Writes artefacts/sampling_diversity.json and returns it.
    """
    if num_samples < 1 or max_new_tokens < 2:
        raise ValueError(f"num_samples={num_samples} must be at least 1 and max_new_tokens={max_new_tokens} "
                         "at least 2 (distinct-2 needs a bigram).")
    seeds = list(range(seed, seed + num_samples))
    rows = [{"model": name, **measure_sampling_setting(model, enc, prompt, top_p, seeds, max_new_tokens, temperature,
                                                        words)}
            for name, model in models.items() for top_p in top_ps]
    model_info = {name: {"family": family_of(model), "parameters": count_parameters(model),
                         "trained": getattr(model, "checkpoint_metadata", {})} for name, model in models.items()}
    config = {"prompt": prompt, "top_ps": list(top_ps), "num_samples": num_samples, "seeds": seeds,
              "max_new_tokens": max_new_tokens, "temperature": temperature, "word_list": word_list,
              "models": model_info}
    path = write_artefact("sampling_diversity", preset=preset, config=config, results={"rows": rows}, device=device)
    return read_artefact(path)
