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
# # 01 · Sanity check: the LSTM baseline, end to end
#
# Before comparing models we check that every stage of the pipeline works: the GPT-2
# tokenizer, the data loader, a model's forward and backward pass, the optimizer, and text
# generation. This is the course notes' first command, run inside a notebook:
#
# ```
# OMP_NUM_THREADS=1 python3 pico-llm.py --tinystories_weight 0.0 --input_files 3seqs.txt \
#     --block_size 32 --max_steps_per_epoch 1 --kgram_k 2 --embed_size 64 --device_id cpu
# ```
#
# It trains an LSTM for three epochs of one step each on three numeric sequences. The model
# will not learn much; what we check is that the loss starts where theory says it must and
# moves down.
#
# This notebook reproduces the notes' run, so it trains the way the starter did: one padded
# example per line of the file, and plain Adam at a constant rate (`h.STARTER_RECIPE`). From
# notebook 03 on, the bundle trains on packed token streams with a modern recipe, which
# learns far more per second.

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
# `PRESET` sets the budget: `quick` (seconds, for tests), `cpu` (a laptop) or `gpu`. Left at
# `None` it comes from the `PICOLLM_PRESET` environment variable, else from the hardware.

# %% tags=["parameters"]
PRESET = None
SEED = 0

# %% [markdown]
# Imports, the run preset and the device (CUDA when present, else Apple's MPS, else the CPU).

# %%
import math
from dataclasses import asdict

import matplotlib.pyplot as plt
import torch

import picollm_helpers as h

run = h.get_run_preset(PRESET)
device = h.pick_device()
print(f"preset {run.name}, device {h.describe_device(device)}")

# %% [markdown]
# What training will take: the memory each model this notebook trains needs at this preset's
# sizes, estimated before any run (`h.estimate_training_memory`: weights, gradients, AdamW's
# state, the activations kept for the backward pass, the logits; with the full vocabulary's
# head, an upper bound for a compact one).

# %%
h.memory_table("01", run, h.resolve_precision("auto", device)).round(3)

# %% [markdown]
# ## 1. The tokenizer
# GPT-2's byte-pair encoding has 50,257 tokens. Text becomes a list of token ids, and the ids
# decode back to exactly the same text.

# %%
enc = h.get_tokenizer()
ids = enc.encode("Once upon a time")
print(f"vocabulary: {enc.n_vocab:,} tokens; '<|endoftext|>' is {enc.eot_token}")
print("Once upon a time ->", ids, "->", [enc.decode([i]) for i in ids])
assert enc.decode(ids) == "Once upon a time"

# %% [markdown]
# ## 2. The data
# `3seqs.txt` holds three numeric sequences, one a line. With `packing=False` each line is one
# training example, tokenized and cut to `block_size` = 32 tokens, as in the starter. A batch
# is a `(seq_len, batch)` tensor, as in the starter code, with a mask marking the real tokens
# (the rest is padding). An epoch is as many random draws as there are sequences: here three.

# %%
BLOCK_SIZE = 32
h.seed_everything(SEED)
corpus = h.build_corpus(enc, BLOCK_SIZE, h.TrainingText(base_weight=0.0, input_files=["3seqs.txt"], seed=SEED),
                        packing=False)
print(f"{corpus.num_train} training sequences, lengths {[len(s) for s in corpus.train_own]}")
tokens, mask = next(corpus.train_batches(batch_size=16, seed=SEED, steps_per_epoch=1))
print("batch tokens:", tuple(tokens.shape), " mask of real tokens:", tuple(mask.shape))
print("first sequence starts:", repr(enc.decode(tokens[:12, 0].tolist())))

# %% [markdown]
# ### Exercise 1: count the targets of a batch
# A batch of lines is padded to its longest line, and the mask says which tokens are real. A
# model predicts every real token from the real tokens before it, so the number of *targets*,
# what a mean loss divides by and what `train_model` reports as a step's tokens, is neither
# `tokens.numel()` nor `mask.sum()`. Write `count_targets`.
#
# Each exercise is a function or class to write, with its shapes in the docstring, and a check in
# the cell after it. In the student's copy of the notebooks (`make student`) its body is a
# `raise NotImplementedError` with a hint: replace that line with your code. In the bundle's own
# notebooks the reference solution stands there instead, between nbgrader's solution markers.

# %%
def count_targets(tokens, mask):
    """How many next-token predictions a batch holds: every real token that has a real token before it.

    tokens: (seq_len, batch) token ids. mask: (seq_len, batch) bools, True at real tokens, False at
    padding; None for a packed batch, which has no padding. Returns an int.
    """
    ### BEGIN SOLUTION
    # HINT: position 0 of a sequence is never a target; with a mask, count its True values from position 1 on
    if mask is None:
        return (tokens.shape[0] - 1) * tokens.shape[1]
    return int(mask[1:].sum())
    ### END SOLUTION


# %% [markdown]
# The check runs your function beside the bundle's `h.targets_in` on padded lines, lines of
# equal length and a packed batch, and says what it verified, or what is wrong and where to look.

# %%
h.check_count_targets(count_targets)

# %% [markdown]
# ## 3. The model, and the loss it must start from
# An untrained model spreads its probability about evenly over the vocabulary, so its
# cross-entropy should be close to ln(50,257) ≈ 10.82 nats. A much larger first loss would
# point at a bug (the course notes once recorded 234 and 360).

# %%
h.seed_everything(SEED)
model = h.LSTMSeqModel(enc.n_vocab, embed_size=64, hidden_size=64).to(device)
with torch.no_grad():
    tokens, mask = tokens.to(device), mask.to(device)
    initial_loss = model.next_token_loss(tokens, mask).item()
print(f"{h.count_parameters(model):,} parameters; loss at initialization {initial_loss:.3f} "
      f"vs ln V = {math.log(enc.n_vocab):.3f}")

# %% [markdown]
# ## 4. Three abbreviated epochs
# One optimizer step per epoch, as in the command, with the starter's recipe. Everything the run
# depends on but the model and the data is one object, `h.TrainingRun`: its budget, batch, seed,
# recipe, evaluation, checkpoints and arithmetic, each with the bundle's default where not given.
# `train_model` returns a table with one row per step: the loss, how many tokens it trained on,
# how fast, and the learning rate.

# %%
sanity_run = h.TrainingRun(budget=h.Budget(max_steps=3, steps_per_epoch=1), batch_size=16, seed=SEED,
                           recipe=h.STARTER_RECIPE)
print(sanity_run)
history = h.train_model(model, corpus, sanity_run, name="LSTM sanity run")
history

# %% [markdown]
# ### Exercise 2: a training loop that counts its tokens
# `train_model` is the bundle's loop, with its budgets, schedule and checkpoints. Its core is a
# few lines a step: the loss of a batch, its gradients, one optimizer step, and the count of
# what it trained on. Write them: `train_steps` returns one row per step, with the loss (before
# the step's update) and the step's targets.

# %%
import pandas as pd


def train_steps(model, batches, optimizer, steps):
    """Train `model` for `steps` optimizer steps; one row per step.

    batches: an iterator of (tokens, mask), tokens (seq_len, batch) ids and mask (seq_len, batch),
    True at real tokens (None when packed). A step's loss is the mean next-token cross-entropy
    over its targets, padding left out: model.next_token_loss(tokens, mask), a 0-d tensor.
    Returns a DataFrame with columns step, loss (a float, before the step's update) and tokens
    (the batch's targets, count_targets).
    """
    ### BEGIN SOLUTION
    # HINT: each step: next(batches); loss = model.next_token_loss(tokens, mask); zero the gradients, backward,
    # step; record loss.item() and count_targets
    rows = []
    for step in range(1, steps + 1):
        tokens, mask = next(batches)
        loss = model.next_token_loss(tokens, mask)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        rows.append({"step": step, "loss": loss.item(), "tokens": count_targets(tokens, mask)})
    return pd.DataFrame(rows)
    ### END SOLUTION


# %% [markdown]
# The check trains a small LSTM with your loop and with `h.train_model`, from the same weights on
# the same padded batches with the starter's plain Adam, and compares them step by step: the
# losses, and the targets counted (`h.targets_in`).

# %%
h.check_training_loop(train_steps)

# %% [markdown]
# ## 5. A longer run, to see the loss fall
# Three steps barely move the loss. The same model trained for the preset's budget shows the
# curve a presentation needs. Both runs' losses are stored in `artefacts/sanity_check.json`,
# with the preset, device and commit that produced them, and the plot is drawn from there.

# %%
h.seed_everything(SEED)
longer_model = h.LSTMSeqModel(enc.n_vocab, embed_size=64, hidden_size=64).to(device)
longer_run = h.TrainingRun(budget=h.Budget(max_steps=run.train_steps, steps_per_epoch=1), batch_size=16, seed=SEED,
                           recipe=h.STARTER_RECIPE)
longer = h.train_model(longer_model, corpus, longer_run, name=f"LSTM, {run.train_steps} steps")
sanity = h.read_artefact(h.write_artefact(
    "sanity_check", preset=run.name, device=device,
    config={"block_size": BLOCK_SIZE, "embed_size": 64, "hidden_size": 64, "batch_size": 16, "seed": SEED,
            "packing": False, "recipe": asdict(h.STARTER_RECIPE), "data": "3seqs.txt"},
    results={"initial_loss": initial_loss, "ln_vocab": math.log(enc.n_vocab),
             "epoch_losses": h.epoch_losses(history).tolist(), "longer_run_losses": longer["loss"].tolist()},
))
h.show_figure("sanity_check", sanity)
plt.show()

# %% [markdown]
# ## 6. Samples
# Greedy decoding always takes the most probable token. Top-p (nucleus) sampling draws from the
# smallest set of tokens whose probabilities add up to p. An untrained model's distribution is
# nearly flat, so even p = 0.95 keeps tens of thousands of tokens, and with the same seed the
# 0.95 and 1.0 samples can look alike: the nucleus size printed beside each sample shows why.

# %%
prompt = "Once upon a"
prompt_log_probs = h.next_token_log_probs(model, enc.encode(prompt))
for label, model_to_sample in [("3 steps", model), (f"{run.train_steps} steps", longer_model)]:
    print(f"--- LSTM after {label}")
    for setting, top_p in [("greedy", None), ("top-p 0.95", 0.95), ("top-p 1.0", 1.0)]:
        text = h.generate_text(model_to_sample, enc, prompt, 20, h.Decoding(top_p=top_p), seed=SEED)
        print(f"{setting:<11} {text!r}")
print(f"nucleus after the prompt (3-step model): p=0.95 keeps {h.nucleus_size(prompt_log_probs, 0.95):,} tokens, "
      f"p=1.0 keeps {h.nucleus_size(prompt_log_probs, 1.0):,}")

# %% [markdown]
# ## 7. Save the model
# The checkpoint lets notebook 04 resample from this LSTM without retraining it.

# %%
print("saved", h.save_checkpoint(longer_model, h.CHECKPOINTS_DIR / "lstm.pt", trained_on="3seqs.txt",
                                 steps=run.train_steps))

# %% [markdown]
# ## Questions you may be asked
# What a presenter may be asked about this notebook, the course notes' interview questions among
# them where they fit. Every number in an answer is read from this run or its artefacts. Click a
# question to see its answer.

# %%
h.sanity_check_questions(sanity)
