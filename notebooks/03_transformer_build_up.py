# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 03 · The Transformer, built up piece by piece
#
# We build a decoder-only Transformer from its parts, check each part with a small visible
# test, and assemble the four presets from the course notes (minGPT, GPT2-small, GPT-oss,
# Llama3-lite). The notes once recorded average losses of 234 and 360 for fresh Transformers: a
# fresh model over 50,257 tokens starts near ln(50,257) ≈ 10.8, so those numbers were bugs.
#
# Then the question that matters most on a laptop: which model *learns* fastest? The four
# presets race the LSTM and the best k-gram design on the plays the bundle ships, for the same
# seconds, measured on *The Winter's Tale*, which no run of this bundle trains on; per CPU
# second and per token, with more than one seed. We see where the compute of a training step
# goes (mostly into the output layer), and train the Transformer that the sampling lab of
# notebook 04 opens on, long enough to write speeches of its own.

# %% [markdown]
# ## Set-up
# On Colab this cell installs the bundle with pip, which never touches torch (Colab has its own).
# Elsewhere `make setup` has installed it, and the cell does nothing. To install your own copy,
# set `PICOLLM_BUNDLE` to its address (`git+https://...`) or to the path of a wheel you uploaded.

# %%
import os
import subprocess
import sys

if "google.colab" in sys.modules:  # elsewhere `make setup` has installed the bundle
    bundle = os.environ.get("PICOLLM_BUNDLE", "git+https://github.com/pico-llm/pico-llm")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", bundle], check=True)

# %% [markdown]
# ## Parameters
# `PRESET` sets the budget (`quick`, `cpu` or `gpu`). On `quick` and `cpu` the presets are
# shrunk for a laptop: d_model and the feed-forward width divided, the blocks capped (printed
# below); heads, norms, positions and feed-forward kinds stay as designed. `gpu` trains them at
# full size.

# %% tags=["parameters"]
PRESET = None
SEED = 0
PROMPT = "ROSALIND.\n"  # a speaker's name and a line break: the writer writes her speech
BASE_CORPUS = "plays"  # what the writer trains on: the bundled plays, or "tinystories" (from the hub)
TINYSTORIES_PATH = None  # a local TinyStories copy, when BASE_CORPUS is "tinystories" and the hub is out of reach
CHECKPOINT_DIR = None  # None: artefacts/checkpoints; on Colab, e.g. "/content/drive/MyDrive/pico-llm"

# %% [markdown]
# Imports, the run preset and the device.

# %%
import math
from dataclasses import asdict

import matplotlib.pyplot as plt
import pandas as pd
import torch
from IPython.display import display

import picollm_helpers as h

run = h.get_run_preset(PRESET)
device = h.pick_device()
enc = h.get_tokenizer()
checkpoint_dir = CHECKPOINT_DIR or h.CHECKPOINTS_DIR
print(f"preset {run.name}, device {h.describe_device(device)}, Transformer scale {run.transformer_scale or 'full size'}")

# %% [markdown]
# What training will take: the memory each model this notebook trains needs at this preset's
# sizes, estimated before any run (`h.estimate_training_memory`: weights, gradients, AdamW's
# state, the activations kept for the backward pass, the logits; with the full vocabulary's
# head, an upper bound for a compact one).

# %%
h.memory_table("03", run, h.resolve_precision("auto", device)).round(3)

# %% [markdown]
# ## 1. RMSNorm
# Each block first normalizes its input. RMSNorm divides a vector by its root mean square,
# x / sqrt(mean(x²) + ε), then scales it by a learned weight (LayerNorm also subtracts the mean
# and adds a bias). Whatever the scale of the input, the output has RMS 1.

# %%
x = torch.randn(3, 16) * torch.tensor([[0.1], [1.0], [50.0]])
normed = h.RMSNorm(16)(x)
pd.DataFrame({"RMS before": x.pow(2).mean(-1).sqrt().tolist(), "RMS after": normed.pow(2).mean(-1).sqrt().tolist()})

# %% [markdown]
# ### Exercise 5: RMSNorm
# Write RMSNorm's forward pass. The check gives it a learned weight and inputs of scale 0.001,
# 1 and 50, and compares it with `h.RMSNorm`; it names LayerNorm's centring, a sum in place of
# the mean, and an epsilon outside the square root if it finds them.

# %%
from torch import nn


class RMSNorm(nn.Module):
    """x / sqrt(mean(x²) + eps) * weight over the last axis: LayerNorm without centring or bias."""

    def __init__(self, dim, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        """x (..., dim) -> the same shape: each vector divided by its root mean square, then scaled by weight."""
        ### BEGIN SOLUTION
        # HINT: x.pow(2).mean(-1, keepdim=True) is each vector's mean square; torch.rsqrt(... + self.eps)
        # one over its root
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight
        ### END SOLUTION


# %% [markdown]
# The check:

# %%
h.check_rms_norm(RMSNorm)

# %% [markdown]
# ## 2. Causal self-attention
# Every position forms a query, a key and a value. Position t mixes the values of positions
# ≤ t, weighted by softmax(q·k / √d): it must never see the future, or training would teach
# it to copy the answer. Here is the mask for 6 positions (1 = may attend), and a check that
# torch's fused `scaled_dot_product_attention` gives what the explicit softmax gives.

# %%
print(h.causal_mask(6, 6, "cpu").int())
config = h.transformer_config("GPT-oss", {"width_divisor": 8, "max_blocks": 1}, vocab_size=enc.n_vocab)
attention = h.CausalSelfAttention(config, block_index=0).eval()
x = torch.randn(1, 6, config.d_model)
explicit, weights = attention(x, return_weights=True)
fused_difference = (attention(x) - explicit).abs().max().item()
print(f"fused vs explicit attention: max difference {fused_difference:.1e}; "
      f"weight above the diagonal: {weights.triu(diagonal=1).abs().max().item():.1f}")
assert fused_difference < 1e-5

# %% [markdown]
# ### Exercise 6: the causal mask
# Which keys each query may see. Without a cache the queries are all the positions; with one,
# they are the few new positions after the cached ones, so the mask is wider than it is tall.

# %%
def causal_mask(q_len, kv_len):
    """True where query i may attend to key j: (q_len, kv_len) bools.

    The queries are the last q_len of kv_len positions (all of them without a cache, the new ones
    with one): query i sits at position kv_len - q_len + i and sees the keys 0 .. that position.
    """
    ### BEGIN SOLUTION
    # HINT: torch.ones(q_len, kv_len, dtype=torch.bool).tril(diagonal=d) keeps key j <= i + d for query i
    return torch.ones(q_len, kv_len, dtype=torch.bool).tril(diagonal=kv_len - q_len)
    ### END SOLUTION


# %% [markdown]
# The check: 5 positions, and 1 and 3 new queries after 4 cached keys.

# %%
h.check_causal_mask(causal_mask)

# %% [markdown]
# ### Exercise 7: causal attention
# Scaled dot-product attention with your mask: scores q·k / √d, the future set to -inf, a
# softmax over the keys, and the weighted sum of the values. The check compares it with the
# bundle's explicit attention (`h.attention_weights`) and names a mask that leaks the future, a
# wrong scale, or a mask applied after the softmax.

# %%
def causal_attention(q, k, v):
    """softmax(q kᵀ / sqrt(head_dim)) v, each query attending to the keys at or before its position.

    q: (batch, heads, q_len, head_dim), the last q_len positions; k and v: (batch, heads, kv_len,
    head_dim). Returns (batch, heads, q_len, head_dim).
    """
    ### BEGIN SOLUTION
    # HINT: scores = q @ k.transpose(-2, -1) / math.sqrt(head_dim); masked_fill(~causal_mask(q_len, kv_len),
    # -inf); softmax(dim=-1); @ v
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    scores = scores.masked_fill(~causal_mask(q.shape[-2], k.shape[-2]), float("-inf"))
    return scores.softmax(dim=-1) @ v
    ### END SOLUTION


# %% [markdown]
# The check: a whole sequence, and 2 new queries after 4 cached keys.

# %%
h.check_causal_attention(causal_attention)

# %% [markdown]
# ## 3. Positions: learned or rotary
# Attention by itself ignores order. minGPT and GPT-2 add a learned vector per position. GPT-oss
# and Llama rotate each query and key by an angle proportional to its position (RoPE). A
# rotation keeps a vector's length, and the score between a query at i and a key at j depends
# only on i - j.

# %%
rotary = h.RotaryEmbedding(head_dim=16, max_seq_len=64)
q, k = torch.randn(1, 1, 1, 16), torch.randn(1, 1, 1, 16)
norms = rotary(q.expand(1, 1, 8, 16).contiguous(), start=0).norm(dim=-1).flatten()
print("norm of q at positions 0..7:", [round(v, 4) for v in norms.tolist()])
for i, j in [(5, 3), (30, 28), (60, 58)]:
    print(f"score(q at {i}, k at {j}) = {(rotary(q, start=i) * rotary(k, start=j)).sum().item():+.4f}")

# %% [markdown]
# ### Exercise 8: rotary positions
# Rotate each query or key by its position. Feature i is paired with feature i + head_dim/2 (the
# two halves of the vector, as in Llama's code), and the pair at position m turns by the angle
# m · base^(-2i/head_dim): fast for the first pairs, slow for the last. `start` is the position
# of the first token: 0 for a whole sequence, the cached length when decoding with a cache.

# %%
def apply_rotary(x, start, base=10_000.0):
    """x (batch, heads, seq, head_dim) at positions start .. start+seq-1 -> x rotated, the same shape.

    With halves x1, x2 of the last axis and angles (seq, head_dim) (each pair's angle twice, for
    both halves): x·cos(angles) + (-x2, x1)·sin(angles).
    """
    ### BEGIN SOLUTION
    # HINT: angles = torch.outer(positions, base ** (-torch.arange(0, head_dim, 2) / head_dim)).repeat(1, 2);
    # x.chunk(2, dim=-1) gives x1, x2
    head_dim, seq_len = x.shape[-1], x.shape[-2]
    positions = torch.arange(start, start + seq_len, dtype=torch.float32)
    frequencies = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    angles = torch.outer(positions, frequencies).repeat(1, 2)
    first, second = x.chunk(2, dim=-1)
    return x * angles.cos() + torch.cat([-second, first], dim=-1) * angles.sin()
    ### END SOLUTION


# %% [markdown]
# The check: positions from 0, and from 7 (as after 7 cached tokens).

# %%
h.check_rotary(apply_rotary)

# %% [markdown]
# ## 4. Feed-forward: GELU or SwiGLU
# After attention, each position goes through an MLP. GPT uses Linear -> GELU -> Linear;
# Llama's SwiGLU multiplies a SiLU-gated branch by a linear one, with three matrices instead of two.

# %%
for name in ["minGPT", "GPT-oss"]:
    ffn = h.FeedForward(h.transformer_config(name))
    print(f"{name:<8} {h.transformer_config(name).ffn:<7} {h.count_parameters(ffn):>10,} parameters per block")

# %% [markdown]
# ## 5. Blocks, the model, and the four presets
# A pre-norm block is x + attention(norm(x)), then x + feed_forward(norm(x)). The model embeds
# tokens, runs the blocks, normalizes, and projects to 50,257 logits (tied to the embedding in
# minGPT and GPT-2). Full-size presets, and the sizes this run trains. The full-size models are
# built on PyTorch's `meta` device, which keeps every tensor's shape and no numbers: counting
# Llama3-lite's parameters that way allocates nothing and takes no time.

# %%
with torch.device("meta"):
    full_size = {name: h.TransformerModel(config) for name, config in h.TRANSFORMER_PRESETS.items()}
presets = pd.DataFrame({name: {**{field: getattr(config, field) for field in
                                  ["d_model", "n_heads", "kv_heads", "n_blocks", "d_ff", "norm", "positions", "ffn",
                                   "tie_weights"]},
                               "parameters (full)": h.count_parameters(full_size[name]),
                               "d_model here": h.transformer_config(name, run.transformer_scale).d_model,
                               "blocks here": h.transformer_config(name, run.transformer_scale).n_blocks}
                        for name, config in h.TRANSFORMER_PRESETS.items()}).T
presets

# %% [markdown]
# Each fresh preset starts near the loss of a uniform guess, ln(50,257) ≈ 10.82.

# %%
tokens = torch.randint(0, enc.n_vocab, (16, 2))
for name in h.TRANSFORMER_PRESETS:
    h.seed_everything(SEED)
    model = h.TransformerModel(h.transformer_config(name, run.transformer_scale))
    with torch.no_grad():
        print(f"{name:<12} initial loss {model.next_token_loss(tokens).item():.3f} "
              f"(ln V = {math.log(enc.n_vocab):.3f})")

# %% [markdown]
# ## 6. The KV cache
# Generating without a cache re-runs the model on the whole prefix for every new token. The
# cache keeps every block's keys and values, so each step runs on the new token alone. It must
# give the same logits as the full forward pass:

# %%
model = h.TransformerModel(h.transformer_config("Llama3-lite", run.transformer_scale, max_seq_len=64)).eval()
sequence = torch.randint(0, enc.n_vocab, (30, 1))
with torch.no_grad():
    full = model(sequence)
    cache = model.new_cache(batch_size=1)
    stepwise = torch.cat([model(sequence[t:t + 1], cache) for t in range(30)])
cache_difference = (stepwise - full).abs().max().item()
print(f"30 single-token steps with the cache vs one full pass: max difference {cache_difference:.1e}")
assert cache_difference <= 1e-4

# %% [markdown]
# ### Exercise 9: the KV cache
# Write the cache itself. `h.TransformerModel` calls its `update` in every block and attends with
# what it returns, so a cache that forgets, or mixes up its blocks, makes generation drift from
# what the full forward pass computes. The check runs a small Llama-style model (RoPE,
# grouped-query heads) on a 4-token prompt and then one token at a time through your cache, and
# compares every step with dense attention over the whole sequence.

# %%
class KVCache:
    """Every block's keys and values of the positions seen so far, for TransformerModel's cache path.

    The model calls update(block, keys, values) in each block with the new positions' keys and
    values, each (batch, kv_heads, new, head_dim), and attends with what it returns: all of this
    block's so far, (batch, kv_heads, length + new, head_dim). It reads `length` (the positions
    cached) for the new tokens' positions, and adds the new tokens to it after the last block.
    """

    def __init__(self, config, batch_size, device, dtype=torch.float32):
        ### BEGIN SOLUTION
        # HINT: self.length = 0, and for each of the config.n_blocks blocks nothing cached yet (lists of None)
        self.length = 0
        self.keys = [None] * config.n_blocks
        self.values = [None] * config.n_blocks
        ### END SOLUTION

    def update(self, block, keys, values):
        """Store the new positions' keys and values of this block; return all of this block's so far."""
        ### BEGIN SOLUTION
        # HINT: torch.cat the cached ones and the new ones along the position axis (-2), and keep the result
        # for next time
        if self.keys[block] is not None:
            keys = torch.cat([self.keys[block], keys], dim=-2)
            values = torch.cat([self.values[block], values], dim=-2)
        self.keys[block], self.values[block] = keys, values
        return keys, values
        ### END SOLUTION


# %% [markdown]
# The check:

# %%
h.check_kv_cache(KVCache)

# %% [markdown]
# ## 7. Which model learns fastest
# Six models race on the plays: the four presets, shrunk alike for this preset, the LSTM, and
# the k-gram design that did best on held-out text in notebook 02. Each trains for the same
# seconds, with the same batches, recipe, head and seeds. The text is *packed*: every work goes
# into one stream of token ids with `<|endoftext|>` after it, and a training item is a random
# window of `block_size + 1` tokens of that stream, so every position is a target and nothing is
# padding. The recipe is today's: AdamW, a short warm-up, then a cosine decay of the learning
# rate, and gradients clipped at norm 1. On `quick` and `cpu` the output layer covers only the
# ids the plays use often enough (a *compact* head, section 9).
#
# Each model is evaluated on the same slice of *The Winter's Tale* after 1, 2, 4, 8, ... steps,
# every few seconds, and when its time is up. Every batch holds the same tokens, so a step number
# is the same number of tokens seen for every model: the right panel compares the models per
# token, the left per CPU second. The races are long enough (a minute each on the `cpu` preset)
# that the Transformers learn more than counting does: the grey and black lines are n-gram count
# models of the same plays (unigram, bigram, and the best order), scored on the same tokens. A
# model below the bigram line has learnt more than which word follows which. Each Transformer
# then generates a few hundred tokens with and without its KV cache, three times each way.
# Stored in `artefacts/fastest_learner.json`.

# %%
try:
    best_kgram = h.read_artefact("kgram_real_text")["results"]["best_design"]
except h.InputError:
    best_kgram = "embedding"
race = h.fastest_learner_study(enc, run, device=device, best_kgram=best_kgram, prompt=PROMPT,
                               checkpoint_dir=checkpoint_dir)
h.show_figure("fastest_learner", race)
plt.show()

# %% [markdown]
# The race as a table: each model's parameters, training speed, steps in the time, and its
# final held-out loss (mean and seed-to-seed standard deviation).

# %%
runs = h.runs_table(race)
runs["final loss"] = runs["curve"].map(lambda curve: curve[-1]["loss"])
runs.groupby("model", sort=False).agg(parameters=("parameters", "first"), tokens_per_s=("tokens_per_s", "mean"),
                                      steps=("steps", "mean"), final_loss=("final loss", "mean"),
                                      final_loss_sd=("final loss", "std")).round(3)

# %% [markdown]
# What the race teaches, computed from the runs: each effect in the claim's direction, averaged
# over the seeds, with its seed-to-seed standard deviation; a claim holds only beyond twice that
# noise.

# %%
h.print_lessons(race)

# %% [markdown]
# ## 8. Learning speed on real text
# The yardstick of this bundle: the held-out loss (nats per token, over all 50,257 ids, and bits
# per character, which any tokenizer shares) after a fixed number of seconds of training.
# `benchmarks/learning_speed.py` trains a Transformer of d_model 128, 4 blocks, 4 heads and a
# context of 64 tokens for 120 seconds on the plays, seven ways, and measures it every 15 seconds
# on *The Winter's Tale* and *Henry VIII*, which no run trains on: the starter's way (one padded
# line per example, Adam at a constant rate), packed streams with the modern recipe and the
# full head, the same with a compact head, the `cpu` preset's own Transformer, the command
# line's defaults, the same with `--compile` (its compile time inside the 120 seconds), and the
# reference recipe (the full head) on the command line's model, each with two seeds. The
# command line's defaults mix their Transformer with an n-gram count model of the same plays
# (`--counts auto`, the mixture's weight chosen on validation lines taken out of training); the
# table shows their Transformer alone beside them, and the count models of the same plays close
# it. The benchmark takes about an hour, so this cell draws its stored artefact.

# %%
try:
    speed = h.read_artefact("learning_speed")
except h.InputError as missing:
    speed = None
    print(f"{missing}\nMake it with: python benchmarks/learning_speed.py")
if speed:
    h.show_figure("learning_speed", speed)
    plt.show()
    display(h.learning_speed_table(speed))

# %% [markdown]
# What each way writes after its 120 seconds, continuing the same prompt (greedy, then a
# nucleus sample at p = 0.8):

# %%
if speed:
    for label, result in speed["results"]["runs"].items():
        print(f"--- {label}")
        for setting, text in result["samples"].items():
            print(f"{setting:>8}: {text!r}")

# %% [markdown]
# ## 9. Where the compute goes
# Why does the way of training matter so much? Profile a few training steps of the preset's
# Transformer and split their time into four parts: the output layer (a d x 50,257 matrix
# product, forward and backward), the softmax and loss over 50,257 logits, everything else in
# the model (embeddings, attention, feed-forward blocks), and the optimizer. Beside the time,
# the arithmetic each part costs per trained token. Then the same with a *compact* head: an
# output layer over only the ids the training text uses (plus one bucket that stands for all
# the others, its probability shared evenly among them, so the model still gives a proper
# distribution over all 50,257 ids and its loss is still in full-vocabulary nats).

# %%
vocab_ids = h.vocab_ids_for(h.build_corpus(enc, run.block_size), "corpus", run.min_count)
breakdowns = {
    "full head (all GPT-2 ids)": h.step_breakdown(run.transformer, device=device, batch_size=run.batch_size,
                                                  block_size=run.block_size, seed=SEED),
    "compact head (the plays' ids)": h.step_breakdown(run.transformer, device=device, vocab_ids=vocab_ids,
                                                      batch_size=run.batch_size, block_size=run.block_size,
                                                      seed=SEED),
}
breakdown = h.write_artefact("step_breakdown", preset=run.name, device=device,
                             config={"transformer": asdict(run.transformer), "batch_size": run.batch_size,
                                     "block_size": run.block_size, "loss": "plain (unfused), profiled"},
                             results={"breakdowns": breakdowns})
h.show_figure("step_breakdown", h.read_artefact(breakdown))
plt.show()
h.step_breakdown_table(h.read_artefact(breakdown))

# %% [markdown]
# The head's logits are a (positions x 50,257) matrix: 200 MB of floats for a batch of 16
# windows of 64 tokens, written, read by the softmax, and written again as a gradient. The
# *fused* loss computes the head, the softmax and their gradients chunk by chunk, never
# holding all of them at once. `benchmarks/fused_loss.py` measured it against the plain path
# on the full head (the bundle trains with whichever was faster on the device):

# %%
try:
    fused = h.read_artefact("fused_loss")
    display(h.fused_loss_table(fused))
except h.InputError as missing:
    print(f"{missing}\nMake it with: python benchmarks/fused_loss.py")

# %% [markdown]
# ## 10. A Transformer that writes
# Now the preset's own Transformer, with a compact head and the packed recipe, trained on the
# plays long enough to write (`BASE_CORPUS = "tinystories"` trains it on TinyStories instead,
# when the hub or `TINYSTORIES_PATH` gives them). It does not start from random weights: its
# embedding and head start as the two factors of the plays' bigram table (`init="counts"`,
# `count_start.py`), so that each token's logits already rank the next tokens as counting pairs
# does, and its steps go into what the previous token alone cannot tell. Then it is mixed with
# the count model of the same plays, as the command line's defaults are:
# p = w p_Transformer + (1 - w) p_counts, the count model's order and the weight w chosen on
# validation lines taken out of training, never on the held-out play. Its training keeps a
# checkpoint in `CHECKPOINT_DIR`: if the run is interrupted, running the cell again goes on
# from it.
#
# Then we measure what it writes, continuing three speakers' names (greedy, and sampled at
# p = 0.5 and 1.0, one sample per seed): the share of its words that are English words or words
# of the plays, how much the samples vary, and the share of their 8-word spans found verbatim
# in any text the bundle ships. A model that memorised its text recites it; one that learned
# the language writes its own lines. Notebook 04's sampling lab opens on this model.

# %%
writer = h.train_writer(enc, run, device=device, base_corpus=BASE_CORPUS, tinystories_path=TINYSTORIES_PATH,
                        seed=SEED, checkpoint_dir=checkpoint_dir)
results = writer["results"]
print(f"{writer['config']['vocabulary']}, {writer['config']['steps']} steps on {writer['config']['data']} "
      f"({writer['config']['train_tokens']:,} tokens)")
print(f"held-out loss on {', '.join(writer['config']['heldout'])}: {results['heldout_loss']:.2f} nats/token, "
      f"{results['heldout_bits_per_char']:.2f} bits/character, the Transformer mixed with "
      f"{results['counts']['label']} (weight {results['counts']['weight']:.2f} on the Transformer, chosen on "
      f"{results['counts']['validation_tokens']:,} validation tokens)")
best_counts = results["counting"]["best"]
print(f"beyond counting: {best_counts - results['heldout_loss']:.2f} nats/token below the best count model of the "
      f"same plays ({h.count_label(results['counting']['best_order'])}, {best_counts:.2f}); the Transformer alone "
      f"{results['transformer_alone']['heldout_loss']:.2f}")
print(f"sampled continuations (p = 0.5 and 1.0): {results['sampled']['copied_span_share']:.1%} of their 8-word "
      f"spans copied from the bundle's texts; {results['sampled']['word_share']:.1%} of their words are words "
      f"({writer['config']['word_list']})")
pd.DataFrame(results["writing"]).T[["word_share", "copied_span_share", "distinct_2", "distinct_samples"]]

# %% [markdown]
# One sample per setting for each prompt. Greedy decoding gives the same text from every seed;
# p = 1.0 draws from the whole distribution, so every seed writes something else.

# %%
seeds = len(writer["config"]["seeds"])
for setting, measures in results["writing"].items():
    for text in measures["samples"][::seeds]:
        print(f"--- {setting}\n{text}")

# %% [markdown]
# ## 11. What the heads look at
# The attention weights of every head of the last block of the Transformer that writes, for
# the prompt. Each row is a token; each column, a token it may attend to (the upper triangle
# is empty: the causal mask). Stored in `artefacts/attention_map.json`.

# %%
writer_model = h.load_checkpoint(checkpoint_dir / "transformer_writer.pt", device)
attention = h.record_attention(writer_model, enc, PROMPT, label="the Transformer that writes", preset=run.name,
                               device=device)
h.show_figure("attention_map", attention)
plt.show()

# %% [markdown]
# ## 12. Conclusion, computed from the artefacts

# %%
h.print_lessons(race)
full, compact = breakdowns.values()
print(f"One training step of the preset's Transformer: {full['step_ms']:.0f} ms with the full head, of which "
      f"{full['parts']['output head']['share'] + full['parts']['softmax and loss']['share']:.0%} in the head and "
      f"softmax; {compact['step_ms']:.0f} ms with the compact head ({full['step_ms'] / compact['step_ms']:.1f}x faster).")
if speed:
    print(h.learning_speed_summary(speed))
print(f"The Transformer that writes: {results['heldout_loss']:.2f} nats/token on {', '.join(writer['config']['heldout'])}; "
      f"{results['sampled']['copied_span_share']:.1%} of its sampled 8-word spans copied, "
      f"{results['sampled']['word_share']:.0%} of its words are words.")

# %% [markdown]
# ## Questions you may be asked
# What a presenter may be asked about this notebook, the course notes' interview questions among
# them where they fit. Every number in an answer is read from this run or its artefacts. Click a
# question to see its answer.

# %%
h.transformer_questions(race, h.read_artefact(breakdown), writer, cache_difference=cache_difference)
