"""What each notebook trains on a run preset, and the memory those trainings need (estimated before any run).

Every notebook prints `memory_table` for its own trainings before it trains them; the tests hold the
gpu preset's estimates within a 16 GB GPU.
"""

from __future__ import annotations

from dataclasses import asdict

import pandas as pd

from ..memory import estimate_training_memory
from ..presets import TRANSFORMER_PRESETS, RunPreset, study_transformer, transformer_config
from ..tokenizer import GPT2_VOCAB_SIZE
from .hyperparameters import HYPERPARAMETER_BUDGETS, width_config
from .overfitting import OVERFITTING_BUDGETS


def transformer(config) -> dict:
    return {"family": "transformer", **asdict(config)}


def notebook_trainings(notebook: str, run: RunPreset) -> dict[str, tuple[dict, int, int]]:
    """The models a notebook trains on a run preset: {name: (config, batch_size, block_size)}, each config a
    {"family": ..., **arguments} dict, with the full GPT-2 head (an upper bound for a compact one)."""
    vocab, block, batch = GPT2_VOCAB_SIZE, run.block_size, run.batch_size
    width = run.embed_size
    kgram = {"family": "kgram", "vocab_size": vocab, "k": 2, "embed_size": 64, "num_inner_layers": 2}
    writer = transformer(run.transformer)
    widest = width_config(run, max(HYPERPARAMETER_BUDGETS[run.name].widths))
    trainings = {
        "01": {"LSTM (the notes' run)": ({"family": "lstm", "vocab_size": vocab, "embed_size": 64,
                                          "hidden_size": 64}, 16, 32)},
        "02": {f"k-gram {variant}": ({**kgram, "variant": variant}, 32, 32)
               for variant in ("onehot", "embedding", "conv")},
        "03": {**{name: (transformer(transformer_config(name, run.transformer_scale, max_seq_len=max(256, block))),
                         batch, block) for name in TRANSFORMER_PRESETS},
               "LSTM": ({"family": "lstm", "vocab_size": vocab, "embed_size": width, "hidden_size": width}, batch,
                        block),
               "writer": (writer, batch, block)},
        "04": {"writer": (writer, batch, block)},
        "05": {"the study Transformer": (transformer(study_transformer(run)), batch, block)},
        "06": {"the study Transformer": (transformer(study_transformer(run)), OVERFITTING_BUDGETS[run.name].batch_size,
                                         block)},
        "07": {f"width {widest.d_model}, {widest.n_blocks} blocks": (transformer(widest), batch, block)},
    }
    return trainings[notebook]


def memory_table(notebook: str, run: RunPreset, precision: str = "fp32", processes: int = 1):
    """Each model a notebook trains, with its estimated training memory in GB by part (full vocabulary:
    an upper bound for a compact head)."""
    rows = {}
    for name, (config, batch_size, block_size) in notebook_trainings(notebook, run).items():
        estimate = estimate_training_memory(config, batch_size, block_size, precision,
                                            grad_accum_steps=run.grad_accum_steps, processes=processes)
        rows[name] = {**{part: size / 1e9 for part, size in estimate["parts"].items()},
                      "total": estimate["total"] / 1e9}
    return pd.DataFrame(rows).T.add_suffix(" (GB)")
