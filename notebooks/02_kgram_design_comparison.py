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
# # 02 · The k-gram MLP: three designs, measured side by side
#
# A k-gram model predicts the next token from the last k tokens alone. The course notes tried
# three ways to feed those k tokens to an MLP and timed them with the starter's Python loop
# over every position and batch item (one-hot 17.6 tokens/s, embedding 42.3, convolution
# 32.3). Here the three designs are vectorized, checked against that loop, trained on
# identical settings, and timed against the loop on this machine. Then, on real text, which
# design learns best and which context window to read, measured on a play no run trains on.
# Every number below comes from this run and is stored in `artefacts/kgram_comparison.json`
# and `artefacts/kgram_real_text.json`.

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
# `PRESET` sets the budget (`quick`, `cpu` or `gpu`; `None` reads `PICOLLM_PRESET`, else the
# hardware). The design comparison reproduces the course notes' run, so it uses their
# configuration and the starter's way of training: k = 2, embedding 64, two inner layers, plain
# Adam at 1e-3 (`h.STARTER_RECIPE`), batches of 32 padded lines of `3seqs.txt`, 20 steps (fewer
# on `quick`).

# %% tags=["parameters"]
PRESET = None
SEED = 0
K = 2
EMBED_SIZE = 64
INNER_LAYERS = 2
BATCH_SIZE = 32

# %% [markdown]
# Imports, the run preset and the device.

# %%
import matplotlib.pyplot as plt
import pandas as pd
import torch

import picollm_helpers as h

run = h.get_run_preset(PRESET)
device = h.pick_device()
enc = h.get_tokenizer()
STEPS = min(20, run.train_steps)
print(f"preset {run.name}, device {h.describe_device(device)}, {STEPS} steps per design")

# %% [markdown]
# What training will take: the memory each model this notebook trains needs at this preset's
# sizes, estimated before any run (`h.estimate_training_memory`: weights, gradients, AdamW's
# state, the activations kept for the backward pass, the logits; with the full vocabulary's
# head, an upper bound for a compact one).

# %%
h.memory_table("02", run, h.resolve_precision("auto", device)).round(3)

# %% [markdown]
# ## 1. Which k tokens the model sees
# The logits at position t predict token t+1 (that is how `compute_next_token_loss` pairs
# them). So the window should be the k tokens *ending at t*: t-k+1 .. t, zero-padded before
# the start. The starter's loop took t-k .. t-1, which never shows the model the token right
# before the one it predicts. Here are both windows for the first tokens of a sentence:

# %%
sentence = torch.tensor(enc.encode("The cat sat on the mat")).view(-1, 1)
ours = h.kgram_windows(sentence, K)[:, 0]
starters = h.kgram_windows(sentence, K, include_current=False)[:, 0]
pd.DataFrame({
    "position t": range(len(sentence)),
    "token t": [enc.decode([i]) for i in sentence[:, 0].tolist()],
    "predicts": [enc.decode([i]) for i in sentence[1:, 0].tolist()] + ["(next)"],
    "window t-k+1..t": [[enc.decode([i]) if i else "·" for i in w.tolist()] for w in ours],
    "starter's t-k..t-1": [[enc.decode([i]) if i else "·" for i in w.tolist()] for w in starters],
})

# %% [markdown]
# ### Exercise 3: the window t-k+1 .. t
# Write the window yourself, for every position of every sequence at once: pad k-1 zeros before
# the start, then take the k tokens ending at each position. The check compares it with
# `h.kgram_windows` and names the starter's window if it finds it.

# %%
import torch.nn.functional as F


def kgram_context(tokens, k):
    """Each position's k context tokens, oldest first: tokens t-k+1 .. t, zero-padded before the start.

    tokens: (seq_len, batch) ids -> (seq_len, batch, k): [t, b] holds tokens t-k+1 .. t of
    sequence b, with 0 where the window reaches before position 0.
    """
    ### BEGIN SOLUTION
    # HINT: F.pad(tokens, (0, 0, k - 1, 0)) puts k-1 zeros before position 0; .unfold(0, k, 1) then gives each
    # run of k
    return F.pad(tokens, (0, 0, k - 1, 0)).unfold(0, k, 1)
    ### END SOLUTION


# %% [markdown]
# The check: k = 3, k = 1, and a k longer than the sequence.

# %%
h.check_kgram_context(kgram_context)

# %% [markdown]
# ## 2. Three designs, one interface
# * **onehot** (the starter's): the k tokens one-hot, flattened to k·|V| = 100,514 inputs,
#   into a Linear layer. A one-hot row times a weight matrix just picks one row of it, so the
#   layer is computed as a lookup, without building the 100,514-wide input.
# * **embedding**: a learned |V| -> 64 embedding per context token, concatenated, then Linear.
# * **conv**: the k embeddings stacked along time, a 1-D convolution across them, then Linear.
#
# All three then run Linear -> SiLU blocks and a Linear to 50,257 logits, on every position
# of every sequence at once.

# %%
design = h.KGramConfig(vocab_size=enc.n_vocab, k=K, embed_size=EMBED_SIZE, num_inner_layers=INNER_LAYERS)
for variant in h.KGramMLPSeqModel.VARIANTS:
    print(f"{variant:<10} {h.count_parameters(h.KGramMLPSeqModel(config=design, variant=variant)):>11,} parameters")

# %% [markdown]
# ### Exercise 4: the k-gram MLP's forward pass
# The embedding design, written as a module of your own: `__init__` builds its layers, and you
# write `forward`, every position of every sequence at once (no Python loop over positions). The
# check copies your layers' weights into the bundle's `h.KGramMLPSeqModel` and compares the
# logits.

# %%
import torch
from torch import nn


class KGramMLP(nn.Module):
    """The embedding design: embed each of the k context tokens, concatenate, then an MLP to logits."""

    def __init__(self, vocab_size, k, embed_size, num_inner_layers=1):
        super().__init__()
        self.k = k
        self.embedding = nn.Embedding(vocab_size, embed_size)
        self.mix = nn.Linear(k * embed_size, embed_size)
        inner = [layer for _ in range(num_inner_layers) for layer in (nn.Linear(embed_size, embed_size), nn.SiLU())]
        self.mlp = nn.Sequential(nn.SiLU(), *inner)
        self.head = nn.Linear(embed_size, vocab_size)

    def forward(self, tokens):
        """tokens (seq_len, batch) -> logits (seq_len, batch, vocab_size); the logits at t read tokens t-k+1 .. t.

        windows (seq_len, batch, k) -> embeddings (seq_len, batch, k, embed_size) -> concatenated
        (seq_len, batch, k * embed_size) -> mix -> mlp -> head.
        """
        ### BEGIN SOLUTION
        # HINT: windows = kgram_context(tokens, self.k); self.embedding(windows).flatten(-2) concatenates
        # the k embeddings
        embedded = self.embedding(kgram_context(tokens, self.k)).flatten(-2)
        return self.head(self.mlp(self.mix(embedded)))
        ### END SOLUTION


# %% [markdown]
# The check:

# %%
h.check_kgram_mlp(KGramMLP)

# %% [markdown]
# ## 3. The fast onehot design computes exactly what the loop computes
# `kgram_starter_loop_logits` is the starter's loop: for each position and batch item it
# builds the one-hot vector and runs the MLP on it. On a small batch both give the same
# logits, up to float rounding.

# %%
h.seed_everything(SEED)
onehot = h.KGramMLPSeqModel(config=design, variant="onehot")
sample = torch.randint(0, enc.n_vocab, (6, 2))
with torch.no_grad():
    difference = (onehot(sample) - h.kgram_starter_loop_logits(onehot, sample)).abs().max().item()
print(f"max |fast - loop| over {sample.numel()} positions x {enc.n_vocab:,} logits: {difference:.2e}")
assert difference <= 1e-5

# %% [markdown]
# ## 4. The comparison
# The three designs train with the same hyperparameters, seed and batches, through the same
# training step every run of the bundle takes (`train_model`, with the fused loss of
# notebook 03). A k-gram model's prediction depends on its window alone, so the training step
# computes each distinct window of a batch once and gives it the targets of every position it
# stands at: the same loss and gradient for less work, much less on these three lines that
# every batch repeats. The onehot design is timed twice more: processing 8 positions at a time
# (`chunk_size=8`, the notes' other setting), and computing every position's window as the loop
# does (`distinct_windows=False`: what vectorising gains by itself). Then the starter's loop trains the onehot
# design from the same initial weights on a few batches, to time it, twice. First as the
# starter runs: in a Python process of its own with glibc's memory allocator at its defaults
# (the speed-ups are over this run). Then in this process, where importing the bundle has
# made the allocator keep freed memory for reuse, which speeds up the loop too (see
# `keep_freed_memory_for_reuse`). This is the slow cell: the loop takes about ten seconds a batch.

# %%
corpus = h.build_corpus(enc, 32, h.TrainingText(base_weight=0.0, input_files=["3seqs.txt"], seed=SEED), packing=False)
notes_run = h.TrainingRun(h.Budget(max_steps=STEPS), batch_size=BATCH_SIZE, seed=SEED, recipe=h.STARTER_RECIPE)
timing = h.LoopTiming(batches=run.timing_batches, batch_size=run.timing_batch_size)
comparison = h.kgram_design_comparison(corpus, design, notes_run, preset=run.name, device=device, timing=timing,
                                       data="3seqs.txt")
h.kgram_comparison_table(comparison)

# %% [markdown]
# Loss against step for each design, and the training speed of each design and of the loop,
# both ways.

# %%
h.show_figure("kgram_comparison", comparison)
plt.show()

# %% [markdown]
# ## 5. The designs on real text, and what the starter's window costs
# The notes' run above measures speed on three numeric lines. What a design *learns* shows on
# real text, held out: every design (with this bundle's window), and the embedding design with
# the starter's window, trained alike on the plays the bundle ships and measured on a slice of
# *The Winter's Tale*, which no run trains on, beside the n-gram count models of the same plays.
# These runs train the bundle's way: random windows
# of the packed text and the modern recipe (notebook 03 explains both), with a compact head over
# the ids the plays use. The best design here is the one notebook 03 races, and these models
# are the k-gram models the sampling lab of notebook 04 offers.

# %%
plays = h.build_corpus(enc, run.block_size)
budget = h.KGRAM_BUDGETS[run.name]
plays_run = h.TrainingRun(h.Budget(max_steps=budget.steps), batch_size=run.batch_size, seed=SEED,
                          evaluation=h.Evaluation(every=budget.eval_every))
real_text = h.kgram_real_text(
    plays, h.standard_heldout(enc, run.block_size, max_tokens=h.RACE_BUDGETS[run.name].eval_tokens),
    h.vocab_ids_for(plays, "corpus", run.min_count), design, plays_run, preset=run.name, device=device,
    checkpoint_dir=h.CHECKPOINTS_DIR)
h.show_figure("kgram_real_text", real_text)
plt.show()
pd.DataFrame(real_text["results"]["runs"]).T[["final_loss", "final_test_loss", "final_test_bpc",
                                              "below_same_k_counts_by", "tokens_per_s"]]

# %% [markdown]
# A k-gram MLP reads the last k tokens, as a (k+1)-gram count model does: it is a neural n-gram
# model, and counting the same text is its baseline. The dashed lines above are the count models
# of the plays scored on the same tokens; the last column says how far below the count model that
# reads the same k tokens each design ended (negative: above it, counting still ahead).

# %%
counting = real_text["results"]["counting"]
same_k = counting["orders"][str(counting["same_k_order"])]["nats_per_token"]
for label, row in real_text["results"]["runs"].items():
    side = "below" if row["below_same_k_counts_by"] > 0 else "above"
    print(f"{label}: {row['final_test_loss']:.3f} nats/token, {abs(row['below_same_k_counts_by']):.3f} {side} the "
          f"{h.count_label(counting['same_k_order'])} ({same_k:.3f})")

# %% [markdown]
# ## 6. Conclusion, computed from the artefacts

# %%
designs = {name: row for name, row in comparison["results"]["designs"].items() if name in h.KGramMLPSeqModel.VARIANTS}
chunked = {name: row for name, row in comparison["results"]["designs"].items() if name not in designs}
loop, loop_here = comparison["results"]["starter_loop"], comparison["results"]["starter_loop_in_this_process"]
best_loss = min(designs, key=lambda name: designs[name]["average_loss"])
fastest = max(designs, key=lambda name: designs[name]["tokens_per_s"])
others = [name for name in designs if name != best_loss]
real_runs = real_text["results"]["runs"]
ours = {row["variant"]: row for row in real_runs.values() if row["window"] == h.KGRAM_WINDOWS[True]}
starters = next(row for row in real_runs.values() if row["window"] == h.KGRAM_WINDOWS[False])
gap = starters["final_test_loss"] - ours[starters["variant"]]["final_test_loss"]
print(f"Lowest average loss over {STEPS} steps: {best_loss} ({designs[best_loss]['average_loss']:.3f} nats; "
      + ", ".join(f"{name} {designs[name]['average_loss']:.3f}" for name in others) + ").")
windows = comparison["results"]["windows"]
print(f"Fastest: {fastest} at {designs[fastest]['tokens_per_s']:,.0f} tokens/s; the onehot design runs "
      f"{designs['onehot']['speedup_over_loop']:.0f}x faster than the starter's loop as the starter runs "
      f"({loop['tokens_per_s']:,.0f} tokens/s), with the same arithmetic"
      + "".join(f"; {name}: {row['speedup_over_loop']:.0f}x" for name, row in chunked.items())
      + f". Vectorising alone gives the {h.EVERY_WINDOW!r} row; the rest is computing each distinct window once: "
      f"{windows['distinct']:,} of these batches' {windows['positions']:,} windows are distinct. In this process the "
      f"loop runs at {loop_here['tokens_per_s']:,.0f} tokens/s, and the onehot design "
      f"{designs['onehot']['speedup_over_loop_in_this_process']:.0f}x faster.")
best = real_text["results"]["best_design"]
print(f"On the plays, after {real_text['config']['steps']} steps, the {best} design reaches the lowest held-out loss "
      f"({ours[best]['final_test_loss']:.3f} nats/token, {ours[best]['final_test_bpc']:.3f} bits/character); the "
      f"starter's window ends {'above' if gap > 0 else 'below'} ours by {abs(gap):.3f} nats (one seed each).")

# %% [markdown]
# ## Questions you may be asked
# What a presenter may be asked about this notebook, the course notes' interview questions among
# them where they fit. Every number in an answer is read from this run or its artefacts. Click a
# question to see its answer.

# %%
h.kgram_questions(comparison, real_text, loop_difference=difference)
