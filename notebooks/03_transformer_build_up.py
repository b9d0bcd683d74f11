# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 03 · The Transformer, built up piece by piece
#
# We build a decoder-only Transformer from its parts, check each part with a small visible
# test, assemble the four presets from the course notes (minGPT, GPT2-small, GPT-oss,
# Llama3-lite), and train them briefly beside the LSTM and the best k-gram design on the same
# data. The notes once recorded average losses of 234 and 360 for fresh Transformers: a fresh
# model over 50,257 tokens starts near ln(50,257) ≈ 10.8, so those numbers were bugs. Here every
# figure comes from this run and is stored in `artefacts/transformer_metrics.json`.

# %% [markdown]
# ## Set-up
# This cell finds the bundle's helper module. On Colab it first fetches the bundle and the
# packages Colab lacks (never torch, which Colab already has).

# %%
import os
import subprocess
import sys
from pathlib import Path

if "google.colab" in sys.modules and not Path("pico-llm").exists():
    subprocess.run(["git", "clone", "--depth", "1", os.environ.get("PICOLLM_REPO", "https://github.com/pico-llm/pico-llm")], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-r", "pico-llm/requirements.txt"], check=True)
ROOT = next(p for p in [Path.cwd(), *Path.cwd().parents, Path("pico-llm").resolve()] if (p / "picollm_helpers").is_dir())
sys.path.insert(0, str(ROOT))
os.chdir(ROOT)

# %% [markdown]
# ## Parameters
# `PRESET` sets the budget (`quick`, `cpu` or `gpu`). On `quick` and `cpu` the presets are
# shrunk for a laptop: d_model and the feed-forward width divided, the blocks capped (printed
# below); heads, norms, positions and feed-forward kinds stay as designed. `gpu` trains them at
# full size.

# %% tags=["parameters"]
PRESET = None
SEED = 0
LEARNING_RATE = 1e-3
PROMPT = "Once upon a time there was a"

# %% [markdown]
# Imports, the run preset and the device.

# %%
import math

import matplotlib.pyplot as plt
import pandas as pd
import torch

import picollm_helpers as h

run = h.get_run_preset(PRESET)
device = h.pick_device()
enc = h.get_tokenizer()
print(f"preset {run.name}, device {h.describe_device(device)}, Transformer scale {run.transformer_scale or 'full size'}")

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
# minGPT and GPT-2). Full-size presets, and the sizes this run trains:

# %%
presets = pd.DataFrame({name: {**{field: getattr(config, field) for field in
                                  ["d_model", "n_heads", "kv_heads", "n_blocks", "d_ff", "norm", "positions", "ffn",
                                   "tie_weights"]},
                               "parameters (full)": h.count_parameters(h.TransformerModel(config)),
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
        print(f"{name:<12} initial loss {h.compute_next_token_loss(model(tokens), tokens).item():.3f} "
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
# ## 7. Training the presets beside the LSTM and the best k-gram design
# Same data (the custom corpus, with TinyStories when it can be reached), same batches, seed and
# learning rate for every model. Then each preset generates 200 tokens with and without the
# cache (50 on `quick`), to time it. The k-gram design is notebook 02's winner when its
# artefact exists.

# %%
corpus = h.build_corpus(enc, run.block_size, tinystories_weight=0.5 if run.tinystories_stories else 0.0,
                        tinystories_stories=run.tinystories_stories, input_dir="data/custom_corpus", seed=SEED)
try:
    kgram_designs = h.read_artefact("kgram_comparison")["results"]["designs"]
    best_kgram = min(kgram_designs, key=lambda name: kgram_designs[name]["average_loss"])
except h.InputError:
    best_kgram = "embedding"
baselines = {
    "LSTM": ("lstm", dict(vocab_size=enc.n_vocab, embed_size=run.embed_size, hidden_size=run.embed_size)),
    f"k-gram ({best_kgram})": ("kgram", dict(vocab_size=enc.n_vocab, k=2, embed_size=run.embed_size,
                                             num_inner_layers=2, variant=best_kgram)),
}
metrics = h.transformer_comparison(
    corpus, enc.n_vocab, preset=run.name, device=device, scale=run.transformer_scale, block_size=run.block_size,
    steps=run.train_steps, batch_size=run.batch_size, learning_rate=LEARNING_RATE, seed=SEED, baselines=baselines,
    cache_tokens=50 if run.name == "quick" else 200, prompt_ids=enc.encode(PROMPT),
    data=f"data/custom_corpus ({corpus.num_train} sequences)", checkpoint_dir=h.CHECKPOINTS_DIR)
h.transformer_metrics_table(metrics)

# %% [markdown]
# Loss against step and training speed:

# %%
h.save_figure(h.plot_transformer_comparison(metrics), "transformer_metrics")
plt.show()

# %% [markdown]
# ## 8. What one head looks at
# The attention weights of the first head of the last block of the trained GPT-oss, for the
# prompt. Each row is a token; each column, a token it may attend to (the upper triangle is
# empty: the causal mask).

# %%
gpt_oss = h.load_checkpoint(h.CHECKPOINTS_DIR / "transformer_GPT-oss.pt", device)
prompt_ids = enc.encode(PROMPT)
maps = gpt_oss.attention_maps(torch.tensor(prompt_ids, device=device))
h.plot_attention_map(maps[-1][0], [enc.decode([i]) for i in prompt_ids],
                     title=f"GPT-oss, block {len(maps)}, head 1")
plt.show()

# %% [markdown]
# ## 9. Conclusion, computed from the artefact

# %%
rows = metrics["results"]["models"]
by_loss = sorted(rows, key=lambda name: rows[name]["average_loss"])
fastest = max(rows, key=lambda name: rows[name]["tokens_per_s"])
speedups = {name: cache["speedup"] for name, cache in metrics["results"]["cache"].items()}
print(f"After {metrics['config']['steps']} steps, lowest average loss: {by_loss[0]} "
      f"({rows[by_loss[0]]['average_loss']:.3f}); highest: {by_loss[-1]} ({rows[by_loss[-1]]['average_loss']:.3f}).")
print(f"Fastest to train: {fastest} at {rows[fastest]['tokens_per_s']:,.0f} tokens/s.")
print(f"The KV cache made {metrics['config']['cache_tokens']}-token generation "
      f"{min(speedups.values()):.1f}x to {max(speedups.values()):.1f}x faster, with identical tokens: "
      f"{all(cache['same_tokens'] for cache in metrics['results']['cache'].values())}.")
