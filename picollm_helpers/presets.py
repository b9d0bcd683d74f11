"""Section 1. Presets: how big a run is, and the four Transformer designs.

A *run preset* sets the budget of a whole notebook (data, sizes, steps) so that one
environment variable, PICOLLM_PRESET, moves every notebook between a smoke test (`quick`),
a laptop run (`cpu`) and a real run (`gpu`). A *Transformer preset* names an architecture.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = PACKAGE_DIR.parent
# A checkout (or an editable install) keeps data/ and artefacts/ beside the package; an installed
# wheel carries them inside it (pyproject.toml maps them there).
IN_CHECKOUT = (PROJECT_ROOT / "pyproject.toml").is_file()
DATA_DIR = PROJECT_ROOT / "data" if IN_CHECKOUT else PACKAGE_DIR / "bundled_data"
BUNDLED_ARTEFACTS_DIR = PROJECT_ROOT / "artefacts" if IN_CHECKOUT else PACKAGE_DIR / "bundled_artefacts"
CUSTOM_CORPUS = "custom_corpus"  # the bundle's own micro-stories; a bare name is looked up in data/
# Where runs write their artefacts: $PICOLLM_ARTEFACTS_DIR (tests point it elsewhere, so that a
# quick run never overwrites the committed artefacts), else the checkout's artefacts/, else
# ./artefacts in the folder a notebook or command runs in.
ARTEFACTS_DIR = Path(os.environ.get("PICOLLM_ARTEFACTS_DIR")
                     or (PROJECT_ROOT / "artefacts" if IN_CHECKOUT else Path.cwd() / "artefacts"))
CHECKPOINTS_DIR = ARTEFACTS_DIR / "checkpoints"
PRESET_ENV_VAR = "PICOLLM_PRESET"


class InputError(ValueError):
    """Bad input from the user. The message names the input and says how to fix it."""


# The command line's groups of flags, in the order --help shows them. A flag is declared beside the field it sets
# (`flag`, as field metadata); cli.py builds the parser from the fields.
DATA_FLAGS, MODEL_FLAGS, OUTPUT_FLAGS = "data", "models", "outputs"
TRAINING_FLAGS = "training (defaults: the bundle's recipe; the starter's for epoch runs)"
EXPERIMENT_FLAGS = "experiments (each writes a measured artefact)"
FLAG_GROUPS = (DATA_FLAGS, MODEL_FLAGS, TRAINING_FLAGS, OUTPUT_FLAGS, EXPERIMENT_FLAGS)
FIELD_DEFAULT = "the field's default"  # a flag whose default is the field's own


def flag(*names: str, group: str, help: str, default=FIELD_DEFAULT, **options) -> dict:
    """The command-line flag that sets a field, as the field's metadata: its spellings (the first its own, any
    others the starter's), its group and help; `default` where the command line's differs from the field's (None:
    resolved when the run is planned, as its help says); argparse's other options (choices, nargs, ...) as given."""
    return {"flag": {"names": names, "group": group, "help": help, "default": default, "options": options}}


MAX_TRANSFORMER_BLOCKS = 10


@dataclass(frozen=True)
class TransformerConfig:
    """Everything that defines a TransformerModel; a checkpoint stores it to rebuild the model."""

    vocab_size: int = 50257
    d_model: int = field(default=384, metadata=flag("--d_model", group=MODEL_FLAGS, default=None,
                                                    help="Resize the Transformer preset: model width."))
    n_heads: int = field(default=6, metadata=flag("--n_heads", group=MODEL_FLAGS, default=None,
                                                  help="Resize the Transformer preset: attention heads."))
    n_blocks: int = field(default=6, metadata=flag("--n_blocks", group=MODEL_FLAGS, default=None,
                                                   help="Resize the Transformer preset: blocks."))
    d_ff: int = field(default=1536, metadata=flag("--d_ff", group=MODEL_FLAGS, default=None,
                                                  help="Resize the Transformer preset: feed-forward width (default: "
                                                       "the preset's ratio to d_model)."))
    norm: str = "rmsnorm"  # "rmsnorm" | "layernorm"
    positions: str = "learned"  # "learned" | "rope"
    ffn: str = "gelu"  # "gelu" | "swiglu"
    tie_weights: bool = True
    dropout: float = 0.0
    n_kv_heads: int | None = None  # fewer key/value heads than query heads: grouped-query attention
    max_seq_len: int = 1024
    rope_base: float = 10_000.0

    def __post_init__(self):
        checks = [
            (self.d_model >= 1 and self.n_heads >= 1, "d_model and n_heads must be at least 1"),
            (self.d_model % self.n_heads == 0,
             f"n_heads={self.n_heads} must divide d_model={self.d_model}"),
            (1 <= self.n_blocks <= MAX_TRANSFORMER_BLOCKS,
             f"n_blocks={self.n_blocks} is outside 1..{MAX_TRANSFORMER_BLOCKS}, the limit of this course"),
            (self.kv_heads >= 1 and self.n_heads % self.kv_heads == 0,
             f"n_kv_heads={self.n_kv_heads} must divide n_heads={self.n_heads}"),
            (self.norm in ("rmsnorm", "layernorm"), f"norm={self.norm!r}: use 'rmsnorm' or 'layernorm'"),
            (self.positions in ("learned", "rope"), f"positions={self.positions!r}: use 'learned' or 'rope'"),
            (self.ffn in ("gelu", "swiglu"), f"ffn={self.ffn!r}: use 'gelu' or 'swiglu'"),
            (self.positions != "rope" or self.head_dim % 2 == 0,
             f"rotary positions need an even head size, got {self.head_dim}"),
            (0.0 <= self.dropout < 1.0, f"dropout={self.dropout} must lie in [0, 1)"),
            (self.max_seq_len >= 1 and self.vocab_size >= 1, "max_seq_len and vocab_size must be at least 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"TransformerConfig: {message}.")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def kv_heads(self) -> int:
        return self.n_kv_heads or self.n_heads


TRANSFORMER_PRESETS = {
    "minGPT": TransformerConfig(
        d_model=384, n_heads=6, n_blocks=6, d_ff=1536, norm="layernorm", positions="learned",
        ffn="gelu", tie_weights=True,
    ),
    "GPT2-small": TransformerConfig(
        d_model=768, n_heads=12, n_blocks=8, d_ff=3072, norm="layernorm", positions="learned",
        ffn="gelu", tie_weights=True,
    ),
    "GPT-oss": TransformerConfig(
        d_model=512, n_heads=8, n_blocks=8, d_ff=2048, norm="rmsnorm", positions="rope",
        ffn="swiglu", tie_weights=False,
    ),
    "Llama3-lite": TransformerConfig(
        d_model=1024, n_heads=16, n_blocks=8, d_ff=8192, norm="rmsnorm", positions="rope",
        ffn="swiglu", tie_weights=False, n_kv_heads=4,
    ),
}


def transformer_config(name: str, scale: dict | None = None, **overrides) -> TransformerConfig:
    """A Transformer preset by name, optionally shrunk, with any field overridden by keyword.

    `scale` shrinks a preset for a small machine: {"width_divisor": 4, "max_blocks": 2}
    divides d_model and the feed-forward width by 4 and keeps at most 2 blocks. The heads, the
    key/value heads and what makes each design itself (norm, positions, feed-forward kind,
    tying) stay, and so do the presets' relative sizes. A d_model given without d_ff keeps
    the preset's ratio of feed-forward width to d_model.
    """
    if name not in TRANSFORMER_PRESETS:
        raise ValueError(f"Unknown Transformer preset {name!r}: choose one of {', '.join(TRANSFORMER_PRESETS)}.")
    base = TRANSFORMER_PRESETS[name]
    config = base
    if scale:
        divisor = scale.get("width_divisor", 1)
        config = replace(base, d_model=base.d_model // divisor, d_ff=base.d_ff // divisor,
                         n_blocks=min(base.n_blocks, scale.get("max_blocks", base.n_blocks)))
    if "d_model" in overrides and "d_ff" not in overrides:
        overrides["d_ff"] = base.d_ff * overrides["d_model"] // base.d_model
    return replace(config, **overrides)


@dataclass(frozen=True)
class RunPreset:
    """The budget of one notebook run. Every notebook reads its sizes from here."""

    name: str
    tinystories_stories: int  # stories streamed from the hub when TinyStories is the base corpus
    block_size: int  # tokens per training sequence
    batch_size: int
    train_steps: int  # optimizer steps per model in a comparison
    eval_every: int  # steps between held-out evaluations
    embed_size: int  # k-gram and LSTM width
    transformer_scale: dict = field(default_factory=dict)  # {"width_divisor", "max_blocks"}, or {} for full size
    timing_batches: int = 3  # batches timed for the slow reference loops
    # windows in each timed batch (None: the comparison's own batch). The starter's loop visits one window at a
    # time, so its tokens/s do not depend on it; fewer windows only take less time.
    timing_batch_size: int | None = None
    vocab: str = "corpus"  # the models' head: "corpus" (compact) or "gpt2" (all 50,257 ids)
    min_count: int | str = "auto"  # with a compact head, how often an id must occur in the training text
    transformer: TransformerConfig = field(default_factory=TransformerConfig)  # the preset's own Transformer
    writer_steps: int = 400  # steps that train the preset's Transformer to write on the plays (notebook 03)
    writer_new_tokens: int = 48  # tokens of each continuation the writer is measured on
    # the Transformer of the studies that train many models each (notebooks 05 and 06): the preset's own, or smaller
    study_transformer: TransformerConfig | None = None
    grad_accum_steps: int = 1  # micro-batches per step: the same batch in less memory


RUN_PRESETS = {
    "quick": RunPreset(
        name="quick", tinystories_stories=0, block_size=32, batch_size=8, train_steps=6,
        eval_every=3, embed_size=32,
        transformer_scale={"width_divisor": 8, "max_blocks": 1},
        timing_batches=1,
        timing_batch_size=2,
        transformer=TransformerConfig(d_model=32, n_heads=2, n_blocks=1, d_ff=128, norm="layernorm", max_seq_len=64),
        writer_steps=20,
        writer_new_tokens=16,
    ),
    "cpu": RunPreset(
        name="cpu", tinystories_stories=2_000, block_size=64, batch_size=16, train_steps=60,
        eval_every=10, embed_size=64,
        transformer_scale={"width_divisor": 4, "max_blocks": 2},
        timing_batches=3,
        # GPT-oss's design, sized for what two CPU cores learn in two minutes with a compact head;
        # the learning-speed benchmark measures it beside minGPT's design (learning_speed.json).
        transformer=TransformerConfig(d_model=128, n_heads=4, n_blocks=4, d_ff=512, norm="rmsnorm", positions="rope",
                                      ffn="swiglu", tie_weights=False, max_seq_len=64),
        writer_steps=1_200,
        study_transformer=TransformerConfig(d_model=64, n_heads=4, n_blocks=2, d_ff=256, norm="rmsnorm",
                                            positions="rope", ffn="swiglu", tie_weights=False, max_seq_len=64),
    ),
    "gpu": RunPreset(
        name="gpu", tinystories_stories=20_000, block_size=256, batch_size=64, train_steps=1_000,
        eval_every=100, embed_size=256, transformer_scale={}, timing_batches=3, vocab="gpt2",
        transformer=TransformerConfig(d_model=384, n_heads=6, n_blocks=6, d_ff=1536, norm="layernorm",
                                      max_seq_len=256),
        writer_steps=3_000,
        grad_accum_steps=4,  # keeps every notebook's largest model within a 16 GB GPU (estimate_training_memory)
    ),
}


def study_transformer(run: RunPreset) -> TransformerConfig:
    """The Transformer the many-run studies train on this preset: its own study model, else its Transformer."""
    return run.study_transformer or run.transformer


def get_run_preset(name: str | None = None) -> RunPreset:
    """The run preset named here, else by $PICOLLM_PRESET, else `gpu` with CUDA and `cpu` without."""
    name = name or os.environ.get(PRESET_ENV_VAR) or ("gpu" if torch.cuda.is_available() else "cpu")
    if name not in RUN_PRESETS:
        raise ValueError(
            f"Unknown run preset {name!r} (from {PRESET_ENV_VAR} or the argument): "
            f"choose one of {', '.join(RUN_PRESETS)}."
        )
    return RUN_PRESETS[name]
