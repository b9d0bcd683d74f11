"""Section 7 (continued). How much memory a training run needs, estimated before it starts.

On one device a training step holds five things: the weights (fp32), their gradients (fp32),
AdamW's two moments per weight (fp32), the activations the backward pass needs, and the
output layer's logits. The last two grow with the tokens of a micro-batch; gradient
accumulation and more processes shrink a micro-batch, compact heads and the fused loss shrink
the logits. The activation counts per token come from what each layer keeps for its backward
pass (a pre-norm block keeps its norms' inputs and outputs, the queries, keys and values, the
attention output, and the feed-forward's hidden layer, twice for SwiGLU's two branches); tests
hold the whole estimate within 30% of measured peaks.
"""

from __future__ import annotations

from dataclasses import asdict

import torch

from .heads import FUSED_CHUNK_ROWS
from .models import build_model, count_parameters
from .presets import TransformerConfig

FLOAT32 = 4
# Bytes an activation takes on average: under autocast the matrix products' inputs and outputs
# are 16-bit, while the norms, the residual stream and the softmax stay in fp32.
ACTIVATION_BYTES = {"fp32": 4.0, "bf16": 3.0, "fp16": 3.0}
ADAM_MOMENTS = 2


def family_and_config(config) -> tuple[str, dict]:
    """A TransformerConfig, or a {"family": ..., **keyword arguments} dict for any family."""
    if isinstance(config, TransformerConfig):
        return "transformer", asdict(config)
    config = dict(config)
    return config.pop("family"), config


def model_parameters(family: str, config: dict, num_classes: int) -> int:
    """The trainable parameters of a model whose head has `num_classes` classes (built on the meta
    device: shapes only, no memory)."""
    with torch.device("meta"):
        model = build_model(family, **{**config, "vocab_size": num_classes})
    return count_parameters(model)


def activations_per_token(family: str, config: dict) -> tuple[int, int]:
    """Numbers the backward pass keeps for each token, and the width of the last hidden state.

    Transformer, per block: about 14 d (norms, queries, keys, values, attention output,
    projection inputs) plus the feed-forward's hidden layer (2 d_ff for GELU, 4 d_ff for
    SwiGLU's gate, up, activation and product); LSTM, per layer: its input and 8 h (four gates,
    two cell states, the output); k-gram MLP: its k embeddings and 2 d per layer.
    """
    if family == "transformer":
        feed_forward = (4 if config["ffn"] == "swiglu" else 2) * config["d_ff"]
        return config["n_blocks"] * (14 * config["d_model"] + feed_forward) + 4 * config["d_model"], config["d_model"]
    if family == "lstm":
        return config["embed_size"] + config.get("num_layers", 1) * 9 * config["hidden_size"], config["hidden_size"]
    width = config["embed_size"]
    return (config["k"] + 2 * (config.get("num_inner_layers", 1) + 2)) * width, width


def estimate_training_memory(config, batch_size: int, block_size: int, precision: str = "fp32", *,
                             num_classes: int | None = None, fused: bool = True, grad_accum_steps: int = 1,
                             processes: int = 1) -> dict:
    """Bytes one device needs to train a model with AdamW, by part and in total.

    config is a TransformerConfig, or {"family": "lstm" | "kgram" | "transformer", **its
    arguments}. batch_size is the global batch, shared among `processes` and split into
    grad_accum_steps micro-batches; num_classes is a compact head's size (None: the full
    vocabulary); precision is fp32, bf16 or fp16.
    """
    family, arguments = family_and_config(config)
    classes = num_classes or arguments["vocab_size"]
    parameters = model_parameters(family, arguments, classes)
    per_token, width = activations_per_token(family, arguments)
    tokens = max(1, batch_size // (processes * grad_accum_steps)) * block_size
    logit_rows = min(tokens, FUSED_CHUNK_ROWS) if fused else tokens
    # fused: a chunk's logits and softmax, plus the hidden states' gradient; plain: logits,
    # log-softmax and their gradient, for every position at once.
    logits = (2 * logit_rows * classes + tokens * width) * FLOAT32 if fused else 3 * tokens * classes * FLOAT32
    parts = {"weights": parameters * FLOAT32, "gradients": parameters * FLOAT32,
             "optimizer state": ADAM_MOMENTS * parameters * FLOAT32,
             "activations": round(tokens * per_token * ACTIVATION_BYTES[precision]), "logits": logits}
    return {"parts": parts, "total": sum(parts.values()), "parameters": parameters, "tokens_per_micro_batch": tokens}
