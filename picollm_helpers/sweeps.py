"""Section 8 (continued). Sweeps: many small trainings, resumable, each sweep one artefact.

`run_sweep` runs one function over a list of configs. After every config it rewrites the
artefact, so an interrupted sweep keeps what it finished. A config that fails (out of memory,
say) is recorded with its error and the sweep goes on. Every run carries its own provenance
(when, at which commit, on which device, with which torch, and a fingerprint of the helpers'
code). A rerun computes everything afresh, unless asked to resume after an interruption
(`resume=True`, or `make run RESUME=1`): then it keeps the finished runs made with the same
settings by the same code. The four sweeps of notebooks 05 to 07 are built on it.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import torch

from .sources import load_custom_examples
from .device import seed_everything
from .artefacts import artefact_path, provenance, read_artefact, write_artefact
from .experiments import copied_ngram_fraction, summarize_history, word_share, words_of
from .heads import vocab_ids_for
from .models import build_model
from .corpus import build_corpus
from .presets import CUSTOM_CORPUS, PACKAGE_DIR, RunPreset, transformer_config
from .sampling import generate_text
from .tokenizer import GPT2_VOCAB_SIZE
from .training import Recipe, train_model

SWEEP_MODELS = ("LSTM", "GPT-oss")
RESUME_ENV_VAR = "PICOLLM_RESUME"


def config_key(config: dict) -> str:
    return json.dumps(config, sort_keys=True, default=str)


def code_fingerprint() -> str:
    """A hash of the helper package's source: a kept run must have been computed by the same code."""
    digest = hashlib.sha256()
    for path in sorted(PACKAGE_DIR.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def resume_requested() -> bool:
    """Whether $PICOLLM_RESUME asks sweeps to keep an interrupted run's work (`make run RESUME=1` sets it)."""
    return os.environ.get(RESUME_ENV_VAR, "0") not in ("", "0")


def finished_runs(path: Path, preset: str, sweep_config: dict, fingerprint: str) -> dict[str, dict]:
    """The successful runs of an earlier sweep with the same settings, computed by the same code."""
    if not path.is_file():
        return {}
    previous = read_artefact(path)
    if previous.get("preset") != preset or config_key(previous.get("config")) != config_key(sweep_config):
        return {}
    return {config_key(run["config"]): run for run in previous["results"]["runs"]
            if run["status"] == "ok" and run.get("provenance", {}).get("code_fingerprint") == fingerprint}


def run_sweep(name: str, configs: list[dict], run_one: Callable[[dict], dict], *, preset: str, device,
              sweep_config: dict, path: str | Path | None = None, resume: bool | None = None) -> dict:
    """Run `run_one` on every config; write artefacts/<name>.json (or `path`) after each.

    Each run is stored as {"config", "status": "ok", **results, "provenance"} or {"config",
    "status": "failed", "error", "provenance"}. With resume (None: $PICOLLM_RESUME), the
    finished runs of an earlier sweep with the same settings and code are kept, provenance
    and all. The artefact's own stamp is this call's; `results` says whether every config
    has been tried (`complete`), and how many runs this call computed and how many it kept.
    """
    path = Path(path) if path else artefact_path(name)
    sweep_config = json.loads(config_key(sweep_config))
    fingerprint = code_fingerprint()
    resume = resume_requested() if resume is None else resume
    done = finished_runs(path, preset, sweep_config, fingerprint) if resume else {}
    runs, computed = [], 0

    def save(complete: bool) -> None:
        write_artefact(name, preset=preset, config=sweep_config, device=device, path=path,
                       results={"complete": complete, "computed": computed, "kept": len(runs) - computed,
                                "code_fingerprint": fingerprint, "runs": runs})

    for index, config in enumerate(configs, start=1):
        if config_key(config) in done:
            runs.append(done[config_key(config)])
            print(f"[{index}/{len(configs)}] {config}: kept from the interrupted run of "
                  f"{runs[-1]['provenance']['created']}")
            continue
        print(f"[{index}/{len(configs)}] {config}", flush=True)
        try:
            outcome = {"status": "ok", **run_one(config)}
        except (RuntimeError, ValueError, MemoryError) as error:  # torch reports out-of-memory as RuntimeError
            outcome = {"status": "failed", "error": f"{type(error).__name__}: {error}"}
            print(f"    failed: {outcome['error']}")
        runs.append({"config": config, **outcome,
                     "provenance": {**provenance(device), "code_fingerprint": fingerprint}})
        computed += 1
        save(complete=False)
    save(complete=True)
    return read_artefact(path)


# ---------------------------------------------------------------- the models the sweeps train

def sweep_model(model: str, corpus, run: RunPreset, *, embed_size: int | None = None, n_heads: int | None = None,
                num_layers: int = 1, max_seq_len: int = 256) -> torch.nn.Module:
    """The LSTM or the GPT-oss Transformer at this run preset's size (or at the sizes given), with the
    preset's vocabulary over this corpus (compact on quick and cpu)."""
    vocab_ids = vocab_ids_for(corpus, run.vocab, run.min_count)
    if model == "LSTM":
        width = embed_size or run.embed_size
        return build_model("lstm", vocab_size=GPT2_VOCAB_SIZE, embed_size=width, hidden_size=width,
                           num_layers=num_layers, vocab_ids=vocab_ids)
    if model == "GPT-oss":
        sizes = dict(d_model=embed_size, d_ff=4 * embed_size, n_heads=n_heads) if embed_size else {}
        config = transformer_config("GPT-oss", run.transformer_scale, max_seq_len=max_seq_len,
                                    **{name: value for name, value in sizes.items() if value is not None})
        return build_model("transformer", **asdict(config), vocab_ids=vocab_ids)
    raise ValueError(f"Unknown sweep model {model!r}: choose one of {', '.join(SWEEP_MODELS)}.")


# ---------------------------------------------------------------- notebook 05: custom data

def custom_data_sweep(enc, run: RunPreset, *, device, sizes=(3, 63, 123, 185), steps: int | None = None,
                      prompt: str = "The harbor", seed: int = 0, input_dir: str = CUSTOM_CORPUS,
                      path: str | Path | None = None) -> dict:
    """Final training loss of the LSTM and GPT-oss at several corpus sizes (the first N lines, packed).

    Each run also stores a sample from `prompt` and the share of its words found in the corpus.
    """
    steps = steps or run.train_steps
    every_line = load_custom_examples(input_dir=input_dir)
    corpus_words = set(words_of(" ".join(every_line)))
    sizes = sorted({min(size, len(every_line)) for size in sizes})

    def train_one(config: dict) -> dict:
        corpus = build_corpus(enc, run.block_size, base_weight=0.0, input_dir=input_dir,
                              limit_custom_examples=config["sequences"], seed=seed)
        seed_everything(seed)
        model = sweep_model(config["model"], corpus, run).to(device)
        history = train_model(model, corpus, max_steps=steps, batch_size=run.batch_size, seed=seed,
                              grad_accum_steps=run.grad_accum_steps,
                              name=f"{config['model']}, {config['sequences']} sequences")
        sample = generate_text(model, enc, prompt, max_new_tokens=20, top_p=0.9, seed=seed)
        return {**summarize_history(history, model), "train_tokens": corpus.num_train_tokens, "sample": sample,
                "corpus_word_fraction": word_share(sample[len(prompt):], corpus_words)}

    configs = [{"model": model, "sequences": size} for model in SWEEP_MODELS for size in sizes]
    sweep_config = {"sizes": sizes, "steps": steps, "batch_size": run.batch_size, "block_size": run.block_size,
                    "recipe": asdict(Recipe()), "seed": seed, "data": input_dir, "prompt": prompt, "packing": True,
                    "vocab": run.vocab, "transformer_scale": run.transformer_scale, "embed_size": run.embed_size}
    return run_sweep("custom_data_sweep", configs, train_one, preset=run.name, device=device,
                     sweep_config=sweep_config, path=path)


def training_budget_sweep(enc, run: RunPreset, *, device, steps_per_epoch=(1, 3, 6), epochs: int = 3,
                          test_fraction: float = 0.4, seed: int = 0, input_dir: str = CUSTOM_CORPUS) -> dict:
    """Train and held-out loss of the LSTM and GPT-oss after 3 x 1, 3 and 6 steps, on a 60/40 split of the lines."""
    corpus = build_corpus(enc, run.block_size, base_weight=0.0, input_dir=input_dir,
                          test_fraction=test_fraction, seed=seed)

    def train_one(config: dict) -> dict:
        seed_everything(seed)
        model = sweep_model(config["model"], corpus, run).to(device)
        history = train_model(model, corpus, max_steps=epochs * config["steps_per_epoch"], batch_size=run.batch_size,
                              seed=seed, grad_accum_steps=run.grad_accum_steps,
                              name=f"{config['model']}, {config['steps_per_epoch']} steps/epoch")
        return {**summarize_history(history, model), "final_test_loss": float(history["test_loss"].dropna().iloc[-1])}

    configs = [{"model": model, "steps_per_epoch": n} for model in SWEEP_MODELS for n in steps_per_epoch]
    sweep_config = {"epochs": epochs, "steps_per_epoch": list(steps_per_epoch), "test_fraction": test_fraction,
                    "train_tokens": corpus.num_train_tokens, "heldout_tokens": corpus.num_heldout_tokens,
                    "batch_size": run.batch_size, "block_size": run.block_size, "recipe": asdict(Recipe()),
                    "seed": seed, "data": input_dir, "packing": True, "vocab": run.vocab,
                    "transformer_scale": run.transformer_scale, "embed_size": run.embed_size}
    return run_sweep("training_budget_sweep", configs, train_one, preset=run.name, device=device,
                     sweep_config=sweep_config)


# ---------------------------------------------------------------- notebook 06: overfitting

def overfitting_sweep(enc, run: RunPreset, *, device, sequences: int = 40, max_steps: int = 100,
                      eval_every: int = 5, sample_every: int = 25, test_fraction: float = 0.4,
                      prompt: str = "The", seed: int = 0, input_dir: str = CUSTOM_CORPUS) -> dict:
    """Train the LSTM and GPT-oss on a small corpus well past the point where held-out loss turns up.

    Every `sample_every` steps a greedy sample is stored with the share of its 4-token n-grams
    copied verbatim from the training text (memorisation).
    """
    corpus = build_corpus(enc, run.block_size, base_weight=0.0, input_dir=input_dir,
                          limit_custom_examples=sequences, test_fraction=test_fraction, seed=seed)
    prompt_ids = enc.encode_ordinary(prompt)

    def train_one(config: dict) -> dict:
        seed_everything(seed)
        model = sweep_model(config["model"], corpus, run).to(device)
        samples = []

        def take_sample(step: int, trained) -> None:
            if step % sample_every == 0 or step == max_steps:
                text = generate_text(trained, enc, prompt, max_new_tokens=24, seed=seed)
                samples.append({"step": step, "text": text, "copied_4gram_fraction": copied_ngram_fraction(
                    prompt_ids + enc.encode_ordinary(text[len(prompt):]), corpus.train_streams())})

        history = train_model(model, corpus, max_steps=max_steps, batch_size=run.batch_size, seed=seed,
                              grad_accum_steps=run.grad_accum_steps, eval_every=eval_every, on_eval=take_sample,
                              name=config["model"])
        evaluated = history.dropna(subset=["test_loss"])
        best = evaluated.loc[evaluated["test_loss"].idxmin()]
        return {"history": history[["step", "loss", "test_loss"]].to_dict(orient="records"),
                "best_test_step": int(best["step"]), "best_test_loss": float(best["test_loss"]),
                "final_test_loss": float(evaluated["test_loss"].iloc[-1]),
                "final_train_loss": float(history["loss"].iloc[-1]), "samples": samples}

    configs = [{"model": model} for model in SWEEP_MODELS]
    sweep_config = {"sequences": sequences, "train_tokens": corpus.num_train_tokens,
                    "heldout_tokens": corpus.num_heldout_tokens, "max_steps": max_steps, "eval_every": eval_every,
                    "sample_every": sample_every, "batch_size": run.batch_size, "block_size": run.block_size,
                    "recipe": asdict(Recipe()), "seed": seed, "prompt": prompt, "data": input_dir, "packing": True,
                    "vocab": run.vocab, "transformer_scale": run.transformer_scale, "embed_size": run.embed_size}
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
        corpus = build_corpus(enc, config["block_size"], base_weight=0.0, input_dir=input_dir,
                              test_fraction=test_fraction, seed=seed)
        seed_everything(seed)
        lstm = config["model"] == "LSTM"
        model = sweep_model(config["model"], corpus, run, embed_size=config["embed_size"],
                            num_layers=config["depth"] if lstm else 1, n_heads=None if lstm else config["depth"],
                            max_seq_len=max(256, config["block_size"])).to(device)
        history = train_model(model, corpus, max_steps=steps, batch_size=batch_size, seed=seed,
                              grad_accum_steps=run.grad_accum_steps,
                              recipe=Recipe(learning_rate=config["learning_rate"]), name=config_key(config))
        return {**summarize_history(history, model), "final_test_loss": float(history["test_loss"].dropna().iloc[-1]),
                "sample": generate_text(model, enc, prompt, max_new_tokens=20, top_p=0.9, seed=seed)}

    sweep_config = {"steps": steps, "batch_size": batch_size, "test_fraction": test_fraction, "seed": seed,
                    "prompt": prompt, "data": input_dir, "packing": True, "vocab": run.vocab,
                    "recipe": asdict(Recipe()) | {"learning_rate": "from the grid"},
                    "grid": {k: list(v) for k, v in HPARAM_GRID.items()},
                    "lstm_layers": list(LSTM_LAYERS), "transformer_heads": list(TRANSFORMER_HEADS),
                    "transformer_blocks": transformer_config("GPT-oss", run.transformer_scale).n_blocks}
    return run_sweep("hparam_sweep", hparam_configs(run), train_one, preset=run.name, device=device,
                     sweep_config=sweep_config)
