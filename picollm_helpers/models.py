"""Section 5 (part two). Models: the k-gram MLP, the LSTM, the Transformer, and one factory.

Every model reads GPT-2 token ids (seq_len, batch), as in the original starter code, and
shares one contract (`LanguageModel`):

  model(tokens)                 logits (seq_len, batch, classes) over its head's classes; the
                                logits at position t predict token t+1
  model.log_probs(tokens)       log-probabilities (seq_len, batch, 50,257) over every GPT-2 id
  model.next_token_loss(tokens) mean full-vocabulary cross-entropy of tokens[1:] given tokens[:-1]

Its head is full (one class per id) or compact (the ids a corpus uses plus a bucket; see
heads.py). Every model keeps the keyword arguments it was built from in `self.config`, and
its vocabulary's kept ids in `self.vocabulary`, so a checkpoint can rebuild it.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from .heads import OutputHead, Vocabulary
from .presets import MODEL_FLAGS, TransformerConfig, flag
from .tokenizer import GPT2_VOCAB_SIZE

IGNORE_INDEX = -100


def compute_next_token_loss(logits: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor | None = None):
    """The starter's loss: mean cross-entropy of full-vocabulary logits[:-1] against tokens[1:].

    Zero for sequences under 2 tokens. `mask` (seq_len, batch), True at real tokens, leaves
    padding out of the mean. Training calls `model.next_token_loss` instead, which also
    handles compact heads and never needs the whole logits tensor.
    """
    if tokens.shape[0] < 2:
        return logits.sum() * 0.0
    # The last position has no next token: it is ignored rather than sliced off, since slicing
    # logits[:-1] would cost one more copy of the (seq_len, batch, vocab) gradient.
    targets = torch.full_like(tokens, IGNORE_INDEX)
    targets[:-1] = tokens[1:] if mask is None else tokens[1:].masked_fill(~mask[1:], IGNORE_INDEX)
    vocab_size = logits.shape[-1]
    return F.cross_entropy(logits.reshape(-1, vocab_size), targets.reshape(-1), ignore_index=IGNORE_INDEX)


def check_token_ids(tokens: torch.Tensor, vocab_size: int) -> None:
    """A clear error for ids outside the vocabulary, instead of an index error deep in torch."""
    if tokens.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"Token ids must be an integer tensor, got {tokens.dtype}.")
    if tokens.numel() and (tokens.min() < 0 or tokens.max() >= vocab_size):
        raise ValueError(f"Token ids must lie in [0, {vocab_size}); got {tokens.min().item()}..{tokens.max().item()}."
                         " Was the text encoded with the same tokenizer as the model?")


def model_device(model: nn.Module) -> torch.device:
    """Where a model's tensors live: its parameters', or its buffers' for a model with none to train (counts)."""
    return next(itertools.chain(model.parameters(), model.buffers())).device


def require_positive(**values) -> None:
    for name, value in values.items():
        if value < 1:
            raise ValueError(f"{name}={value}: it must be at least 1.")


class LanguageModel(nn.Module):
    """The contract every family keeps; a family defines `hidden_states` and builds `lm_head`.

    `hidden_states(classes, *state)` maps class ids (seq_len, batch) to the last hidden
    states (seq_len, batch, d) that `lm_head` reads.
    """

    vocabulary: Vocabulary
    lm_head: OutputHead

    def forward(self, tokens: torch.Tensor, *state) -> torch.Tensor:
        """tokens (seq_len, batch) -> logits (seq_len, batch, classes); `state` is the Transformer's KV cache."""
        return self.lm_head(self.hidden_states(self.read(tokens), *state))

    def log_probs(self, tokens: torch.Tensor, *state) -> torch.Tensor:
        """tokens (seq_len, batch) -> log-probabilities (seq_len, batch, vocab_size) over every id."""
        return self.lm_head.log_probs(self.hidden_states(self.read(tokens), *state))

    def next_token_loss(self, tokens: torch.Tensor, mask: torch.Tensor | None = None,
                        fused: bool = True) -> torch.Tensor:
        """Mean full-vocabulary nats of predicting tokens[1:] from tokens[:-1] (zero under 2 tokens).

        `mask` (seq_len, batch), True at real tokens, leaves padding out of the mean; `fused`
        picks the chunked loss that never holds the whole logits tensor (heads.py).
        """
        if tokens.shape[0] < 2:
            return self.lm_head.weight.sum() * 0.0
        hidden = self.hidden_states(self.read(tokens[:-1]))
        return self.lm_head.loss(hidden, tokens[1:], None if mask is None else mask[1:], fused)

    def target_log_probs(self, tokens: torch.Tensor) -> torch.Tensor:
        """log p(tokens[t+1] | tokens[:t+1]) over every id, for t = 0 .. seq_len - 2: (seq_len - 1, batch)."""
        return self.lm_head.target_log_probs(self.hidden_states(self.read(tokens[:-1])), tokens[1:])

    def read(self, tokens: torch.Tensor) -> torch.Tensor:
        """Checked GPT-2 ids -> the class ids the embedding reads."""
        check_token_ids(tokens, self.vocab_size)
        return self.vocabulary.encode(tokens)

    @property
    def num_classes(self) -> int:
        return self.vocabulary.num_classes


ACTIVATIONS = {"silu": nn.SiLU, "gelu": nn.GELU, "relu": nn.ReLU, "tanh": nn.Tanh}


# ---------------------------------------------------------------- k-gram MLP


def kgram_windows(tokens: torch.Tensor, k: int, include_current: bool = True) -> torch.Tensor:
    """For each position t, the k context tokens (oldest first), zero-padded at the start: (seq_len, batch, k).

    With include_current the window is t-k+1 .. t, the k tokens ending at the one the logits at
    t sit on. The starter's loop took t-k .. t-1, which never shows the model the token right
    before the one it predicts.
    """
    lead = k - 1 if include_current else k
    padded = F.pad(tokens, (0, 0, lead, 0))  # zeros before position 0 along time
    return padded.unfold(0, k, 1)[: tokens.shape[0]]


KGRAM_VARIANTS = ("onehot", "embedding", "conv")


@dataclass(frozen=True)
class KGramConfig:
    """Everything that defines a KGramMLPSeqModel (see it for what each design is); a checkpoint stores it."""

    vocab_size: int = GPT2_VOCAB_SIZE
    k: int = field(default=3, metadata=flag("--kgram_k", group=MODEL_FLAGS,
                                            help="Context tokens the k-gram MLP sees."))
    embed_size: int = field(default=1024, metadata=flag(
        "--embed_size", group=MODEL_FLAGS, help="Embedding (and hidden) size of the k-gram MLP and the LSTM."))
    num_inner_layers: int = field(default=1, metadata=flag(
        "--num_inner_mlp_layers", group=MODEL_FLAGS, help="Hidden Linear+SiLU blocks of the k-gram MLP."))
    chunk_size: int = field(default=1024, metadata=flag(
        "--kgram_chunk_size", group=MODEL_FLAGS,
        help="Positions the k-gram MLP processes at once (bounds its peak memory)."))
    activation: str = "silu"
    variant: str = field(default="embedding", metadata=flag(
        "--kgram_variant", group=MODEL_FLAGS, choices=[*KGRAM_VARIANTS, "compare"],
        help="The k-gram MLP's input design; 'compare' trains all three alike, times the starter's loop, prints the "
             "table and writes artefacts/kgram_comparison.json."))
    include_current: bool = True  # the window t-k+1..t (this bundle's); False: t-k..t-1 (the starter's)
    distinct_windows: bool = True  # a training step computes each distinct window of its batch once

    def __post_init__(self):
        require_positive(vocab_size=self.vocab_size, k=self.k, embed_size=self.embed_size, chunk_size=self.chunk_size)
        if self.num_inner_layers < 0:
            raise ValueError(f"num_inner_layers={self.num_inner_layers}: it must be 0 or more.")
        if self.variant not in KGRAM_VARIANTS:
            raise ValueError(f"variant={self.variant!r}: choose one of {', '.join(KGRAM_VARIANTS)}.")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation={self.activation!r}: choose one of {', '.join(ACTIVATIONS)}.")



class KGramMLPSeqModel(LanguageModel):
    """Predict the next token from the previous k tokens alone, with an MLP.

    Three designs of the input side, compared in notebook 02:
      onehot:    the k tokens one-hot, flattened to k*|V|, into a Linear layer. A one-hot row times
                 a weight matrix is a row lookup, so that first layer is an EmbeddingBag over
                 k*|V| rows: the same arithmetic, without building the k*|V| input.
      embedding: a learned |V| -> d embedding per context token, concatenated to k*d.
      conv:      the k embeddings stacked along time, a depthwise 1-D convolution across them
                 (k*d weights, shared by nothing but position) and a pointwise mix of channels.
    Then activation -> (Linear -> activation) x num_inner_layers, and the output head.
    |V| is the vocabulary's number of classes: 50,257 with the full head, fewer with a compact one.
    """

    VARIANTS = KGRAM_VARIANTS

    def __init__(self, vocab_size: int | None = None, config: KGramConfig | None = None,
                 vocab_ids: list[int] | None = None, bucket: str = "plays", **overrides):
        super().__init__()
        sized = {"vocab_size": vocab_size} if vocab_size is not None else {}
        config = KGramConfig(**{**(asdict(config) if config else {}), **sized, **overrides})
        self.config = asdict(config)
        self.vocab_size, self.k, self.chunk_size = config.vocab_size, config.k, config.chunk_size
        self.variant, self.include_current = config.variant, config.include_current
        self.distinct_windows = config.distinct_windows
        self.context_window = config.k + (0 if config.include_current else 1)  # tokens a prediction can see
        self.vocabulary = Vocabulary(config.vocab_size, vocab_ids, bucket)
        k, classes, d, act = config.k, self.vocabulary.num_classes, config.embed_size, ACTIVATIONS[config.activation]
        if config.variant == "onehot":
            self.onehot_layer = nn.EmbeddingBag(k * classes, d, mode="sum")
            self.onehot_bias = nn.Parameter(torch.zeros(d))
            self.register_buffer("slot_offsets", torch.arange(k) * classes, persistent=False)
        else:
            self.embedding = nn.Embedding(classes, d)
            if config.variant == "embedding":
                self.mix = nn.Linear(k * d, d)
            else:
                self.depthwise = nn.Conv1d(d, d, kernel_size=k, groups=d)
                self.mix = nn.Linear(d, d)
        inner = [layer for _ in range(config.num_inner_layers) for layer in (nn.Linear(d, d), act())]
        self.mlp = nn.Sequential(act(), *inner)
        self.lm_head = OutputHead(d, self.vocabulary)

    def features(self, windows: torch.Tensor) -> torch.Tensor:
        """(n, k) context windows of class ids -> (n, d) features, before the activation and inner layers."""
        if self.variant == "onehot":
            return self.onehot_layer(windows + self.slot_offsets) + self.onehot_bias
        embedded = self.embedding(windows)  # (n, k, d)
        if self.variant == "embedding":
            return self.mix(embedded.flatten(1))
        return self.mix(self.depthwise(embedded.transpose(1, 2)).squeeze(-1))

    def hidden_states(self, classes: torch.Tensor) -> torch.Tensor:
        """Every position's window through the MLP, chunk_size positions (of every batch item) at a time."""
        seq_len, batch = classes.shape
        return self.window_states(self.windows(classes), self.chunk_size * batch).view(seq_len, batch, -1)

    def windows(self, classes: torch.Tensor) -> torch.Tensor:
        """(seq_len, batch) class ids -> each position's window, (seq_len * batch, k), position by position."""
        return kgram_windows(classes, self.k, self.include_current).reshape(-1, self.k)

    def window_states(self, windows: torch.Tensor, per_chunk: int) -> torch.Tensor:
        """(n, k) windows -> (n, d) hidden states, per_chunk windows at a time."""
        return torch.cat([self.mlp(self.features(chunk)) for chunk in windows.split(per_chunk)])

    def next_token_loss(self, tokens: torch.Tensor, mask: torch.Tensor | None = None,
                        fused: bool = True) -> torch.Tensor:
        """As every model's, but each distinct window in the batch goes through the MLP and the head once.

        A k-gram model's prediction depends on its window alone, so a window that recurs (a common
        pair of words, a line the corpus repeats) is computed once and carries the targets of every
        position it stands at: the same loss and gradient, for less work. `distinct_windows=False`
        computes every position's window, as `hidden_states` does.
        """
        if tokens.shape[0] < 2 or not self.distinct_windows:
            return super().next_token_loss(tokens, mask, fused)
        distinct, row_of_position = torch.unique(self.windows(self.read(tokens[:-1])), dim=0, return_inverse=True)
        hidden = self.window_states(distinct, self.chunk_size * tokens.shape[1])
        return self.lm_head.loss(hidden, tokens[1:], None if mask is None else mask[1:], fused, rows=row_of_position)


def kgram_starter_loop_logits(model: KGramMLPSeqModel, tokens: torch.Tensor) -> torch.Tensor:
    """The onehot model computed the starter's way: a Python loop over positions and batch items.

    Each window becomes an explicit k*|V| one-hot vector that goes through the first layer as a
    dense matrix product. It gives the same logits as `model(tokens)`, hundreds of times more
    slowly; notebook 02 times it to show what vectorizing is worth.
    """
    if model.variant != "onehot":
        raise ValueError(f"The starter's loop is the onehot design; this model is {model.variant!r}.")
    seq_len, batch = tokens.shape
    windows = kgram_windows(model.read(tokens), model.k, model.include_current)
    first_layer = model.onehot_layer.weight  # (k*|V|, d): a one-hot row picks one of its rows
    rows = []
    for t in range(seq_len):
        for b in range(batch):
            onehot = torch.cat([F.one_hot(token, model.num_classes) for token in windows[t, b]]).float()
            rows.append(model.lm_head(model.mlp(onehot @ first_layer + model.onehot_bias)))
    return torch.stack(rows).view(seq_len, batch, model.num_classes)


# ---------------------------------------------------------------- LSTM


class LSTMSeqModel(LanguageModel):
    """Embedding -> LSTM -> output head, the starter's baseline (with a choice of depth)."""

    def __init__(self, vocab_size: int, embed_size: int = 1024, hidden_size: int = 1024, num_layers: int = 1,
                 vocab_ids: list[int] | None = None, bucket: str = "plays"):
        super().__init__()
        require_positive(vocab_size=vocab_size, embed_size=embed_size, hidden_size=hidden_size, num_layers=num_layers)
        self.config = dict(vocab_size=vocab_size, embed_size=embed_size, hidden_size=hidden_size,
                           num_layers=num_layers)
        self.vocab_size = vocab_size
        self.context_window = None  # an LSTM reads the whole prefix
        self.vocabulary = Vocabulary(vocab_size, vocab_ids, bucket)
        self.embedding = nn.Embedding(self.vocabulary.num_classes, embed_size)
        self.lstm = nn.LSTM(embed_size, hidden_size, num_layers=num_layers)
        self.lm_head = OutputHead(hidden_size, self.vocabulary)

    def hidden_states(self, classes: torch.Tensor) -> torch.Tensor:
        self.lstm.flatten_parameters()
        hidden, _ = self.lstm(self.embedding(classes))
        return hidden


# ---------------------------------------------------------------- Transformer


class RMSNorm(nn.Module):
    """x / sqrt(mean(x^2) + eps) * weight: LayerNorm without centring or bias."""

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def make_norm(kind: str, dim: int) -> nn.Module:
    return RMSNorm(dim) if kind == "rmsnorm" else nn.LayerNorm(dim)


class RotaryEmbedding(nn.Module):
    """Rotary position embeddings: rotate each pair of features by an angle proportional to position.

    Rotations keep vector norms, and the dot product of a rotated query and key depends only on
    their distance, so attention sees relative positions.
    """

    def __init__(self, head_dim: int, max_seq_len: int, base: float = 10_000.0):
        super().__init__()
        inv_freq = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
        angles = torch.outer(torch.arange(max_seq_len, dtype=torch.float32), inv_freq)
        angles = torch.cat([angles, angles], dim=-1)  # (max_seq_len, head_dim)
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def forward(self, x: torch.Tensor, start: int) -> torch.Tensor:
        """x: (batch, heads, seq, head_dim), at positions start .. start+seq-1."""
        seq_len = x.shape[-2]
        cos, sin = self.cos[start:start + seq_len], self.sin[start:start + seq_len]
        first, second = x.chunk(2, dim=-1)
        return x * cos + torch.cat([-second, first], dim=-1) * sin


class KVCache:
    """Keys and values of every position decoded so far, one preallocated buffer per block.

    With it, generating a token runs the model on that one token instead of on the whole
    prefix again: each step costs O(prefix) attention instead of O(prefix^2).
    """

    def __init__(self, config: TransformerConfig, batch_size: int, device, dtype=torch.float32):
        shape = (config.n_blocks, batch_size, config.kv_heads, config.max_seq_len, config.head_dim)
        self.keys = torch.zeros(shape, device=device, dtype=dtype)
        self.values = torch.zeros(shape, device=device, dtype=dtype)
        self.length = 0  # positions filled so far

    def update(self, block: int, keys: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store the new positions' keys and values; return all of them so far for this block."""
        end = self.length + keys.shape[-2]
        self.keys[block, :, :, self.length:end] = keys
        self.values[block, :, :, self.length:end] = values
        return self.keys[block, :, :, :end], self.values[block, :, :, :end]


class CausalSelfAttention(nn.Module):
    """Multi-head attention in which position t attends to positions <= t only.

    With n_kv_heads < n_heads, groups of query heads share one key/value head (grouped-query
    attention), which shrinks the KV cache by that factor.
    """

    def __init__(self, config: TransformerConfig, block_index: int):
        super().__init__()
        self.block_index, self.n_heads, self.kv_heads = block_index, config.n_heads, config.kv_heads
        self.head_dim = config.head_dim
        self.query = nn.Linear(config.d_model, config.d_model, bias=False)
        self.key_value = nn.Linear(config.d_model, 2 * config.kv_heads * config.head_dim, bias=False)
        self.out = nn.Linear(config.d_model, config.d_model, bias=False)
        self.out.is_residual_projection = True
        self.dropout = config.dropout
        self.rotary = (RotaryEmbedding(config.head_dim, config.max_seq_len, config.rope_base)
                       if config.positions == "rope" else None)

    def split_heads(self, x: torch.Tensor, heads: int) -> torch.Tensor:
        batch, seq_len, _ = x.shape
        return x.view(batch, seq_len, heads, self.head_dim).transpose(1, 2)  # (batch, heads, seq, head_dim)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, return_weights: bool = False):
        """x: (batch, seq, d_model). Returns (batch, seq, d_model), and the attention weights if asked."""
        start = cache.length if cache is not None else 0
        q = self.split_heads(self.query(x), self.n_heads)
        k, v = (self.split_heads(t, self.kv_heads) for t in self.key_value(x).chunk(2, dim=-1))
        if self.rotary is not None:
            q, k = self.rotary(q, start), self.rotary(k, start)
        if cache is not None:
            k, v = cache.update(self.block_index, k, v)
        if return_weights:
            weights = attention_weights(q, repeat_kv(k, self.n_heads), causal_mask(q.shape[-2], k.shape[-2], x.device))
            y = weights @ repeat_kv(v, self.n_heads)
        else:
            weights = None
            # Without a cache the mask is the plain causal one: saying so lets torch pick its fused
            # kernels (flash attention), which never store the (seq x seq) scores.
            whole = q.shape[-2] == k.shape[-2]
            y = F.scaled_dot_product_attention(
                q, k, v, attn_mask=None if whole else causal_mask(q.shape[-2], k.shape[-2], x.device),
                is_causal=whole, enable_gqa=self.kv_heads != self.n_heads,
                dropout_p=self.dropout if self.training else 0.0)
        y = y.transpose(1, 2).reshape(x.shape)
        return (self.out(y), weights) if return_weights else self.out(y)


def causal_mask(q_len: int, kv_len: int, device) -> torch.Tensor:
    """True where query i (the last q_len of kv_len positions) may attend to key j: j <= its position."""
    return torch.ones(q_len, kv_len, dtype=torch.bool, device=device).tril(diagonal=kv_len - q_len)


def repeat_kv(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    return x.repeat_interleave(n_heads // x.shape[1], dim=1)


def attention_weights(q: torch.Tensor, k: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """softmax(q k^T / sqrt(d)) with future positions masked: the weights behind the heat maps."""
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
    return scores.masked_fill(~mask, float("-inf")).softmax(dim=-1)


class FeedForward(nn.Module):
    """GELU: Linear -> GELU -> Linear. SwiGLU: (SiLU(x W_gate) * x W_up) W_down, as in Llama."""

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.swiglu = config.ffn == "swiglu"
        self.up = nn.Linear(config.d_model, config.d_ff, bias=not self.swiglu)
        self.gate = nn.Linear(config.d_model, config.d_ff, bias=False) if self.swiglu else None
        self.down = nn.Linear(config.d_ff, config.d_model, bias=not self.swiglu)
        self.down.is_residual_projection = True
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = F.silu(self.gate(x)) * self.up(x) if self.swiglu else F.gelu(self.up(x))
        return self.dropout(self.down(hidden))


class TransformerBlock(nn.Module):
    """Pre-norm block: x + attention(norm(x)), then x + feed_forward(norm(x))."""

    def __init__(self, config: TransformerConfig, block_index: int):
        super().__init__()
        self.attention_norm = make_norm(config.norm, config.d_model)
        self.attention = CausalSelfAttention(config, block_index)
        self.ffn_norm = make_norm(config.norm, config.d_model)
        self.ffn = FeedForward(config)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        x = x + self.dropout(self.attention(self.attention_norm(x), cache))
        return x + self.ffn(self.ffn_norm(x))


class TransformerModel(LanguageModel):
    """A decoder-only Transformer over (seq_len, batch) tokens, with an optional KV cache.

    Initialization follows GPT-2: weights normal(0, 0.02), biases zero, and the projections
    that write into the residual stream scaled by 1/sqrt(2 * n_blocks), so the residual
    stream's variance does not grow with depth.
    """

    def __init__(self, config: TransformerConfig | None = None, vocab_ids: list[int] | None = None,
                 bucket: str = "plays", **overrides):
        super().__init__()
        config = TransformerConfig(**{**(asdict(config) if config else {}), **overrides})
        self.config = asdict(config)
        self.settings = config
        self.vocab_size = config.vocab_size
        self.context_window = config.max_seq_len
        self.vocabulary = Vocabulary(config.vocab_size, vocab_ids, bucket)
        self.token_embedding = nn.Embedding(self.vocabulary.num_classes, config.d_model)
        self.position_embedding = (nn.Embedding(config.max_seq_len, config.d_model)
                                   if config.positions == "learned" else None)
        self.dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(TransformerBlock(config, i) for i in range(config.n_blocks))
        self.final_norm = make_norm(config.norm, config.d_model)
        self.lm_head = OutputHead(config.d_model, self.vocabulary, bias=False)
        self.apply(self.init_weights)
        if config.tie_weights:
            self.lm_head.linear.weight = self.token_embedding.weight

    def init_weights(self, module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            std = 0.02
            if getattr(module, "is_residual_projection", False):
                std /= math.sqrt(2 * self.settings.n_blocks)
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)

    def new_cache(self, batch_size: int) -> KVCache:
        weight = self.token_embedding.weight
        return KVCache(self.settings, batch_size, weight.device, weight.dtype)

    def embed(self, classes: torch.Tensor, start: int) -> torch.Tensor:
        """(seq, batch) class ids -> (batch, seq, d_model) inputs, with learned positions if used."""
        seq_len = classes.shape[0]
        if start + seq_len > self.settings.max_seq_len:
            raise ValueError(f"Sequence of {start + seq_len} tokens exceeds max_seq_len="
                             f"{self.settings.max_seq_len}: build the model with a larger max_seq_len.")
        x = self.token_embedding(classes.t())
        if self.position_embedding is not None:
            x = x + self.position_embedding(torch.arange(start, start + seq_len, device=classes.device))
        return self.dropout(x)

    def hidden_states(self, classes: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        """(seq, batch) class ids -> (seq, batch, d_model). With a cache, the tokens continue it."""
        x = self.embed(classes, cache.length if cache is not None else 0)
        for block in self.blocks:
            x = block(x, cache)
        if cache is not None:
            cache.length += classes.shape[0]
        return self.final_norm(x).transpose(0, 1)

    @torch.no_grad()
    def attention_maps(self, tokens: torch.Tensor) -> list[torch.Tensor]:
        """Attention weights of every block for one sequence: a list of (heads, seq, seq)."""
        x = self.embed(self.read(tokens.view(-1, 1)), 0)
        maps = []
        for block in self.blocks:
            attended, weights = block.attention(block.attention_norm(x), return_weights=True)
            maps.append(weights[0])
            x = x + attended
            x = x + block.ffn(block.ffn_norm(x))
        return maps


# ---------------------------------------------------------------- one factory

MODEL_FAMILIES = {"kgram": KGramMLPSeqModel, "lstm": LSTMSeqModel, "transformer": TransformerModel}


def build_model(family: str, **config) -> nn.Module:
    """Any model of the bundle by family name: `kgram`, `lstm` or `transformer`.

    `config` holds the family's keyword arguments; `vocab_ids` among them makes the head
    compact (the ids kept, see heads.py), and leaving it out gives the full GPT-2 head;
    `bucket` names the compact head's prior over the ids it does not keep ("plays" or "uniform").
    """
    if family not in MODEL_FAMILIES:
        raise ValueError(f"Unknown model family {family!r}: choose one of {', '.join(MODEL_FAMILIES)}.")
    return MODEL_FAMILIES[family](**config)


def family_of(model: nn.Module) -> str:
    """A model's family: one of MODEL_FAMILIES, or the family a model that is not built by name says it is
    (counts, or a model with counts beside it)."""
    return next((name for name, cls in MODEL_FAMILIES.items() if isinstance(model, cls)), getattr(model, "family", None))


def describe_vocabulary(model: LanguageModel) -> str:
    """A model's head in words: 'gpt2 (50,257 ids)' or 'corpus (8,986 ids + a bucket for 41,271)'."""
    return describe_head(model.vocabulary.ids(), model.vocab_size)


def describe_head(vocab_ids: list[int] | None, vocab_size: int = GPT2_VOCAB_SIZE) -> str:
    """A head's kept ids in words (None: the full head), as describe_vocabulary says them."""
    if vocab_ids is None:
        return f"gpt2 ({vocab_size:,} ids)"
    return f"corpus ({len(vocab_ids):,} ids + a bucket for {vocab_size - len(vocab_ids):,})"


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters, counting a tied weight once."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def flops_per_token(config: TransformerConfig, block_size: int, num_classes: int) -> float:
    """Training FLOPs per token (forward and backward): 6 per weight a token meets in a matrix product
    (the blocks' weights and the output layer's), and 12 L T d for the attention scores (nanoGPT's count)."""
    with torch.device("meta"):
        model = build_model("transformer", **asdict(config))
    block_weights = sum(p.numel() for p in model.blocks.parameters())
    return 6 * (block_weights + config.d_model * num_classes) + 12 * config.n_blocks * block_size * config.d_model
