"""The course notes' own small runs, kept runnable from the command line beside the real studies.

`--collect_transformer_metrics` trains every Transformer preset (shrunk) and the LSTM on the
same batches and times the KV cache; `--custom_sweep_log` trains the LSTM and GPT-oss on the
first 3, 63, 123 and 185 lines of the custom corpus. Both are the notes' configurations: a few
steps on a few thousand tokens, measured by training loss. The notebooks' studies measure the
same questions on real text, held out, with seeds (studies/fastest_learner.py, own_text.py).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
import torch

from ..artefacts import corpus_size, history_rows, read_artefact, summarize_history, write_artefact
from ..corpus import TrainingText, build_corpus
from ..device import seed_everything
from ..heads import vocab_ids_for
from ..models import build_model, describe_vocabulary
from ..presets import CUSTOM_CORPUS, TRANSFORMER_PRESETS, RunPreset, transformer_config
from ..sampling import Decoding, generate_text
from ..sources import load_custom_examples
from ..tokenizer import GPT2_VOCAB_SIZE
from ..training import Arithmetic, Budget, Recipe, TrainingRun, train_model
from .fastest_learner import cache_speedup
from .lessons import Study, run_study
from .text_measures import word_share, words_of


@dataclass(frozen=True)
class KVCacheTiming:
    """How the KV cache is timed: greedy decoding of `tokens` new tokens after the prompt's ids."""

    tokens: int = 200
    prompt_ids: tuple[int, ...] = (0,)


def transformer_comparison(corpus, run: TrainingRun, *, preset: str, device, scale: dict,
                           vocab_ids: list[int] | None = None, baselines: dict | None = None,
                           cache: KVCacheTiming = KVCacheTiming()) -> dict:
    """Train every Transformer preset (shrunk by `scale`) and the baselines alike, as `run` says; time the KV cache.

    `baselines` maps a name to (family, config) for the models to compare with, e.g. the LSTM
    and the best k-gram design. Every model gets the same batches, seed, recipe and vocabulary
    (`vocab_ids`: a compact head's ids, or None for the full one).
    For each preset, greedy decoding of `cache.tokens` tokens is timed with and without the
    cache. Writes artefacts/transformer_metrics.json and returns it.
    """
    max_seq_len = max(corpus.block_size, len(cache.prompt_ids) + cache.tokens)
    models = {name: ("transformer", asdict(transformer_config(name, scale, vocab_size=GPT2_VOCAB_SIZE,
                                                              max_seq_len=max_seq_len)))
              for name in TRANSFORMER_PRESETS}
    models.update(baselines or {})
    rows, histories, caches = {}, [], {}
    for name, (family, config) in models.items():
        seed_everything(run.seed)
        model = build_model(family, **config, vocab_ids=vocab_ids).to(device)
        history = train_model(model, corpus, run, name=name)
        rows[name] = {"family": family, **summarize_history(history, model)}
        histories.append(history)
        if family == "transformer":
            caches[name] = cache_speedup(model, list(cache.prompt_ids), cache.tokens)
            rows[name]["cache_speedup"] = caches[name]["speedup"]
    config = {"scale": scale, "block_size": corpus.block_size, "steps": run.budget.max_steps,
              "batch_size": run.batch_size, "recipe": asdict(run.recipe), "seed": run.seed, "data": corpus.trained_on,
              **corpus_size(corpus), "vocabulary": describe_vocabulary(model), "cache_tokens": cache.tokens,
              "models": {name: {"family": family, **config} for name, (family, config) in models.items()}}
    results = {"models": rows, "cache": caches,
               "history": [row for history in histories for row in history_rows(history)]}
    path = write_artefact("transformer_metrics", preset=preset, config=config, results=results, device=device)
    return read_artefact(path)


def transformer_metrics_table(artefact: dict) -> pd.DataFrame:
    columns = ["family", "average_loss", "final_loss", "tokens_per_s", "wall_s", "parameters", "cache_speedup"]
    return pd.DataFrame(artefact["results"]["models"]).T.reindex(columns=columns)


NOTES_MODELS = ("LSTM", "GPT-oss")


def notes_model(model: str, corpus, run: RunPreset) -> torch.nn.Module:
    """The LSTM or the GPT-oss Transformer at this run preset's size, with the preset's head over this corpus."""
    vocab_ids = vocab_ids_for(corpus, run.vocab, run.min_count)
    if model == "LSTM":
        return build_model("lstm", vocab_size=GPT2_VOCAB_SIZE, embed_size=run.embed_size, hidden_size=run.embed_size,
                           vocab_ids=vocab_ids)
    config = transformer_config("GPT-oss", run.transformer_scale, max_seq_len=max(256, run.block_size))
    return build_model("transformer", **asdict(config), vocab_ids=vocab_ids)


@dataclass(frozen=True)
class SizeSweep:
    """The notes' corpus-size sweep: the first `sizes` lines of `input_dir`, `steps` steps a run (None: the run
    preset's), each run sampled from `prompt`."""

    sizes: tuple[int, ...] = (3, 63, 123, 185)
    steps: int | None = None
    prompt: str = "The harbor"
    seed: int = 0
    input_dir: str = CUSTOM_CORPUS


def custom_data_sweep(enc, run: RunPreset, sweep: SizeSweep = SizeSweep(), *, device,
                      path: str | Path | None = None) -> dict:
    """Final training loss of the LSTM and GPT-oss at several corpus sizes (the first N lines, packed).

    Each run also stores a sample from the sweep's prompt and the share of its words found in the corpus.
    """
    return run_study(custom_sweep_plan(enc, run, sweep, device=device), preset=run.name, device=device, path=path)


def custom_sweep_plan(enc, run: RunPreset, sweep: SizeSweep = SizeSweep(), *, device) -> Study:
    """The sweep's runs (both models at every size), the function that trains one, and its settings."""
    steps, prompt, seed, input_dir = sweep.steps or run.train_steps, sweep.prompt, sweep.seed, sweep.input_dir
    every_line = load_custom_examples(input_dir=input_dir)
    corpus_words = set(words_of(" ".join(every_line)))
    sizes = sorted({min(size, len(every_line)) for size in sweep.sizes})

    def train_one(config: dict) -> dict:
        corpus = build_corpus(enc, run.block_size, TrainingText(base_weight=0.0, input_dir=input_dir,
                                                                limit_custom_examples=config["sequences"], seed=seed))
        seed_everything(seed)
        model = notes_model(config["model"], corpus, run).to(device)
        training = TrainingRun(budget=Budget(max_steps=steps), batch_size=run.batch_size, seed=seed,
                               arithmetic=Arithmetic(grad_accum_steps=run.grad_accum_steps))
        history = train_model(model, corpus, training, name=f"{config['model']}, {config['sequences']} sequences")
        sample = generate_text(model, enc, prompt, 20, Decoding(top_p=0.9), seed=seed)
        return {**summarize_history(history, model), "train_tokens": corpus.num_train_tokens, "sample": sample,
                "corpus_word_fraction": word_share(sample[len(prompt):], corpus_words)}

    configs = [{"model": model, "sequences": size} for model in NOTES_MODELS for size in sizes]
    sweep_config = {"sizes": sizes, "steps": steps, "batch_size": run.batch_size, "block_size": run.block_size,
                    "recipe": asdict(Recipe()), "seed": seed, "data": input_dir, "prompt": prompt, "packing": True,
                    "vocab": run.vocab, "transformer_scale": run.transformer_scale, "embed_size": run.embed_size}
    return Study("custom_data_sweep", configs, train_one, sweep_config)
