"""Section 8 (continued). Sweeps: many small trainings, resumable, each sweep one artefact.

`run_sweep` runs one function over a list of configs. After every config it rewrites the
artefact, so an interrupted sweep keeps what it finished and a rerun continues from there. A
config that fails (out of memory, say) is recorded with its error and the sweep goes on.
The four sweeps of notebooks 05 to 07 are built on it.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import pandas as pd
import torch

from .data import build_corpus
from .device import seed_everything
from .experiments import artefact_path, read_artefact, summarize_history, train_for_steps, write_artefact
from .models import build_model
from .presets import RunPreset, transformer_config
from .sampling import generate_text

SWEEP_MODELS = ("LSTM", "GPT-oss")


def config_key(config: dict) -> str:
    return json.dumps(config, sort_keys=True, default=str)


def finished_runs(path: Path, preset: str, sweep_config: dict) -> dict[str, dict]:
    """The successful runs of an earlier, interrupted or complete, sweep with the same settings."""
    if not path.is_file():
        return {}
    previous = read_artefact(path)
    if previous.get("preset") != preset or config_key(previous.get("config")) != config_key(sweep_config):
        return {}
    return {config_key(run["config"]): run for run in previous["results"]["runs"] if run["status"] == "ok"}


def run_sweep(name: str, configs: list[dict], run_one: Callable[[dict], dict], *, preset: str, device,
              sweep_config: dict, path: str | Path | None = None) -> dict:
    """Run `run_one` on every config not finished before; write artefacts/<name>.json after each.

    Each run is stored as {"config", "status": "ok", **results} or {"config", "status":
    "failed", "error"}. `results.complete` says whether every config has been tried.
    """
    path = Path(path) if path else artefact_path(name)
    sweep_config = json.loads(config_key(sweep_config))
    done = finished_runs(path, preset, sweep_config)
    runs = []

    def save(complete: bool) -> None:
        write_artefact(name, preset=preset, config=sweep_config, device=device,
                       results={"complete": complete, "runs": runs}, path=path)

    for index, config in enumerate(configs, start=1):
        if config_key(config) in done:
            runs.append(done[config_key(config)])
            print(f"[{index}/{len(configs)}] {config}: kept from the earlier run")
            continue
        print(f"[{index}/{len(configs)}] {config}", flush=True)
        try:
            runs.append({"config": config, "status": "ok", **run_one(config)})
        except (RuntimeError, ValueError, MemoryError) as error:  # torch reports out-of-memory as RuntimeError
            runs.append({"config": config, "status": "failed", "error": f"{type(error).__name__}: {error}"})
            print(f"    failed: {runs[-1]['error']}")
        save(complete=False)
    save(complete=True)
    return read_artefact(path)


# ---------------------------------------------------------------- the models the sweeps train

def sweep_model(model: str, vocab_size: int, run: RunPreset, *, embed_size: int | None = None,
                n_heads: int | None = None, num_layers: int = 1, max_seq_len: int = 256) -> torch.nn.Module:
    """The LSTM or the GPT-oss Transformer at this run preset's size, or at the sizes given."""
    if model == "LSTM":
        width = embed_size or run.embed_size
        return build_model("lstm", vocab_size=vocab_size, embed_size=width, hidden_size=width, num_layers=num_layers)
    if model == "GPT-oss":
        config = transformer_config("GPT-oss", run.transformer_scale, vocab_size=vocab_size, max_seq_len=max_seq_len)
        if embed_size:
            config = transformer_config("GPT-oss", run.transformer_scale, vocab_size=vocab_size,
                                        max_seq_len=max_seq_len, d_model=embed_size, d_ff=4 * embed_size,
                                        n_heads=n_heads or config.n_heads)
        return build_model("transformer", **asdict(config))
    raise ValueError(f"Unknown sweep model {model!r}: choose one of {', '.join(SWEEP_MODELS)}.")


def words_of(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


def corpus_word_fraction(text: str, corpus_words: set[str]) -> float:
    """The share of a text's words that occur in the corpus: how much of the corpus' vocabulary it uses."""
    words = words_of(text)
    return sum(word in corpus_words for word in words) / len(words) if words else math.nan


def copied_ngram_fraction(generated: list[int], training: list[list[int]], n: int = 4) -> float:
    """The share of the generated token n-grams that occur verbatim in the training sequences."""
    seen = {tuple(seq[i:i + n]) for seq in training for i in range(len(seq) - n + 1)}
    grams = [tuple(generated[i:i + n]) for i in range(len(generated) - n + 1)]
    return sum(gram in seen for gram in grams) / len(grams) if grams else math.nan


# ---------------------------------------------------------------- notebook 05: custom data

CUSTOM_CORPUS = "data/custom_corpus"


def custom_data_sweep(enc, run: RunPreset, *, device, sizes=(3, 63, 123, 185), steps: int | None = None,
                      prompt: str = "The harbor", seed: int = 0, input_dir: str = CUSTOM_CORPUS,
                      path: str | Path | None = None) -> dict:
    """Final training loss of the LSTM and GPT-oss at several corpus sizes (the first N lines).

    Each run also stores a sample from `prompt` and the share of its words found in the corpus.
    """
    steps = steps or run.train_steps
    every_line = build_corpus(enc, run.block_size, tinystories_weight=0.0, input_dir=input_dir).all_sequences()
    corpus_words = set(words_of(" ".join(enc.decode(seq) for seq in every_line)))
    sizes = sorted({min(size, len(every_line)) for size in sizes})

    def train_one(config: dict) -> dict:
        corpus = build_corpus(enc, run.block_size, tinystories_weight=0.0, input_dir=input_dir,
                              limit_custom_examples=config["sequences"], seed=seed)
        seed_everything(seed)
        model = sweep_model(config["model"], enc.n_vocab, run).to(device)
        history = train_for_steps(model, corpus, steps=steps, batch_size=run.batch_size, learning_rate=1e-3,
                                  seed=seed, name=f"{config['model']}, {config['sequences']} sequences")
        sample = generate_text(model, enc, prompt, max_new_tokens=20, top_p=0.9, seed=seed)
        return {**summarize_history(history, model), "sample": sample,
                "corpus_word_fraction": corpus_word_fraction(sample[len(prompt):], corpus_words)}

    configs = [{"model": model, "sequences": size} for model in SWEEP_MODELS for size in sizes]
    sweep_config = {"sizes": sizes, "steps": steps, "batch_size": run.batch_size, "block_size": run.block_size,
                    "learning_rate": 1e-3, "seed": seed, "data": input_dir, "prompt": prompt,
                    "transformer_scale": run.transformer_scale, "embed_size": run.embed_size}
    return run_sweep("custom_data_sweep", configs, train_one, preset=run.name, device=device,
                     sweep_config=sweep_config, path=path)


def training_budget_sweep(enc, run: RunPreset, *, device, steps_per_epoch=(1, 3, 6), epochs: int = 3,
                          test_fraction: float = 0.4, seed: int = 0, input_dir: str = CUSTOM_CORPUS) -> dict:
    """Train and held-out loss of the LSTM and GPT-oss after 1, 3 and 6 steps per epoch, on a 60/40 split."""
    corpus = build_corpus(enc, run.block_size, tinystories_weight=0.0, input_dir=input_dir,
                          test_fraction=test_fraction, seed=seed)

    def train_one(config: dict) -> dict:
        seed_everything(seed)
        model = sweep_model(config["model"], enc.n_vocab, run).to(device)
        history = train_for_steps(model, corpus, steps=epochs * config["steps_per_epoch"],
                                  batch_size=run.batch_size, learning_rate=1e-3, seed=seed,
                                  name=f"{config['model']}, {config['steps_per_epoch']} steps/epoch")
        return {**summarize_history(history, model), "final_test_loss": float(history["test_loss"].dropna().iloc[-1])}

    configs = [{"model": model, "steps_per_epoch": n} for model in SWEEP_MODELS for n in steps_per_epoch]
    sweep_config = {"epochs": epochs, "steps_per_epoch": list(steps_per_epoch), "test_fraction": test_fraction,
                    "train_sequences": corpus.num_train, "test_sequences": corpus.num_test,
                    "batch_size": run.batch_size, "block_size": run.block_size, "seed": seed, "data": input_dir,
                    "transformer_scale": run.transformer_scale, "embed_size": run.embed_size}
    return run_sweep("training_budget_sweep", configs, train_one, preset=run.name, device=device,
                     sweep_config=sweep_config)


# ---------------------------------------------------------------- notebook 06: overfitting

def overfitting_sweep(enc, run: RunPreset, *, device, sequences: int = 40, max_steps: int = 100,
                      eval_every: int = 5, sample_every: int = 25, test_fraction: float = 0.4,
                      prompt: str = "The", seed: int = 0, input_dir: str = CUSTOM_CORPUS) -> dict:
    """Train the LSTM and GPT-oss on a small corpus well past the point where held-out loss turns up.

    Every `sample_every` steps a greedy sample is stored with the share of its 4-token n-grams
    copied verbatim from the training sequences (memorisation).
    """
    corpus = build_corpus(enc, run.block_size, tinystories_weight=0.0, input_dir=input_dir,
                          limit_custom_examples=sequences, test_fraction=test_fraction, seed=seed)
    training = corpus.train_tiny + corpus.train_other

    def train_one(config: dict) -> dict:
        seed_everything(seed)
        model = sweep_model(config["model"], enc.n_vocab, run).to(device)
        histories, samples = [], []
        for start in range(0, max_steps, sample_every):
            chunk = min(sample_every, max_steps - start)
            history = train_for_steps(model, corpus, steps=chunk, batch_size=run.batch_size, learning_rate=1e-3,
                                      seed=seed + start, eval_every=eval_every, name=config["model"])
            histories.append(history.assign(step=history["step"] + start))
            prompt_ids = enc.encode_ordinary(prompt)
            text = generate_text(model, enc, prompt, max_new_tokens=24, seed=seed)
            samples.append({"step": start + chunk, "text": text, "copied_4gram_fraction": copied_ngram_fraction(
                prompt_ids + enc.encode_ordinary(text[len(prompt):]), training)})
        history = pd.concat(histories, ignore_index=True)
        evaluated = history.dropna(subset=["test_loss"])
        best = evaluated.loc[evaluated["test_loss"].idxmin()]
        return {"history": history[["step", "loss", "test_loss"]].to_dict(orient="records"),
                "best_test_step": int(best["step"]), "best_test_loss": float(best["test_loss"]),
                "final_test_loss": float(evaluated["test_loss"].iloc[-1]),
                "final_train_loss": float(history["loss"].iloc[-1]), "samples": samples}

    configs = [{"model": model} for model in SWEEP_MODELS]
    sweep_config = {"sequences": sequences, "train_sequences": corpus.num_train, "test_sequences": corpus.num_test,
                    "max_steps": max_steps, "eval_every": eval_every, "sample_every": sample_every,
                    "batch_size": run.batch_size, "block_size": run.block_size, "seed": seed, "prompt": prompt,
                    "data": input_dir, "transformer_scale": run.transformer_scale, "embed_size": run.embed_size}
    return run_sweep("overfitting_sweep", configs, train_one, preset=run.name, device=device,
                     sweep_config=sweep_config)


# ---------------------------------------------------------------- notebook 07: hyperparameters

HPARAM_GRID = {"embed_size": (256, 512, 1024), "block_size": (32, 64, 128), "learning_rate": (5e-4, 1e-3)}
LSTM_LAYERS, TRANSFORMER_HEADS = (1, 2), (4, 8)


def hparam_configs(run: RunPreset) -> list[dict]:
    """The grid on `gpu`; on `quick` and `cpu` a subset (see notebook 07 for why).

    gpu: every combination of the notes' grid for both models (36 each).
    cpu: embedding size x learning rate in full (the two settings the notes expected to matter
    most, and a heat map needs both axes), at block 64 with 1 LSTM layer / 4 heads; then one
    factor at a time from that centre: block 32 and 128, 2 LSTM layers, 8 heads.
    quick: the smallest embedding at both learning rates, block 32, to exercise the code.
    """
    if run.name == "gpu":
        return [{"model": model, "embed_size": e, "block_size": b, "learning_rate": lr, "depth": depth}
                for model, depths in (("LSTM", LSTM_LAYERS), ("GPT-oss", TRANSFORMER_HEADS))
                for e in HPARAM_GRID["embed_size"] for b in HPARAM_GRID["block_size"]
                for lr in HPARAM_GRID["learning_rate"] for depth in depths]
    if run.name == "quick":
        return [{"model": model, "embed_size": 256, "block_size": 32, "learning_rate": lr, "depth": depth}
                for model, depth in (("LSTM", 1), ("GPT-oss", 4)) for lr in HPARAM_GRID["learning_rate"]]
    configs = []
    for model, (base_depth, other_depth) in (("LSTM", LSTM_LAYERS), ("GPT-oss", TRANSFORMER_HEADS)):
        centre = {"model": model, "embed_size": 256, "block_size": 64, "learning_rate": 1e-3, "depth": base_depth}
        configs += [{**centre, "embed_size": e, "learning_rate": lr}
                    for e in HPARAM_GRID["embed_size"] for lr in HPARAM_GRID["learning_rate"]]
        configs += [{**centre, "block_size": b} for b in HPARAM_GRID["block_size"] if b != 64]
        configs.append({**centre, "depth": other_depth})
    return configs


def hparam_sweep(enc, run: RunPreset, *, device, steps: int | None = None, test_fraction: float = 0.2,
                 prompt: str = "Once upon a", seed: int = 0, input_dir: str = CUSTOM_CORPUS) -> dict:
    """Train and held-out loss, tokens/s and a sample for each config of `hparam_configs(run)`.

    `depth` is the number of LSTM layers for the LSTM and the number of heads for GPT-oss.
    Every config trains for the same number of steps (a fixed budget) on batches half the
    preset's size, which keeps the largest configs to a laptop's minutes.
    """
    steps = steps or max(2, run.train_steps // 3)
    batch_size = max(1, run.batch_size // 2)

    def train_one(config: dict) -> dict:
        corpus = build_corpus(enc, config["block_size"], tinystories_weight=0.0, input_dir=input_dir,
                              test_fraction=test_fraction, seed=seed)
        seed_everything(seed)
        lstm = config["model"] == "LSTM"
        model = sweep_model(config["model"], enc.n_vocab, run, embed_size=config["embed_size"],
                            num_layers=config["depth"] if lstm else 1, n_heads=None if lstm else config["depth"],
                            max_seq_len=max(256, config["block_size"])).to(device)
        history = train_for_steps(model, corpus, steps=steps, batch_size=batch_size,
                                  learning_rate=config["learning_rate"], seed=seed, name=config_key(config))
        return {**summarize_history(history, model), "final_test_loss": float(history["test_loss"].dropna().iloc[-1]),
                "sample": generate_text(model, enc, prompt, max_new_tokens=20, top_p=0.9, seed=seed)}

    sweep_config = {"steps": steps, "batch_size": batch_size, "test_fraction": test_fraction, "seed": seed,
                    "prompt": prompt, "data": input_dir, "grid": {k: list(v) for k, v in HPARAM_GRID.items()},
                    "lstm_layers": list(LSTM_LAYERS), "transformer_heads": list(TRANSFORMER_HEADS),
                    "transformer_blocks": transformer_config("GPT-oss", run.transformer_scale).n_blocks}
    return run_sweep("hparam_sweep", hparam_configs(run), train_one, preset=run.name, device=device,
                     sweep_config=sweep_config)
