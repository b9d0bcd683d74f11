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
# # 04 · The nucleus sampling lab
#
# A language model gives a probability for every one of the 50,257 next tokens. How we pick
# from that distribution changes the text as much as the model does. Greedy decoding takes the
# most probable token; nucleus (top-p) sampling draws from the smallest set of most probable
# tokens whose total probability reaches p, renormalized. The course notes found their nucleus
# sampler was a placeholder that returned the argmax, so every p gave the same text. Here we
# measure what p really does, then play with it.

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
# `PRESET` sets the budget (`quick`, `cpu` or `gpu`). The comparison draws `NUM_SAMPLES`
# continuations of 20 tokens from `PROMPT` per model and setting (`None` is greedy).

# %% tags=["parameters"]
PRESET = None
SEED = 0
PROMPT = "Once upon a"
TOP_PS = [None, 0.8, 0.95, 1.0]
NUM_SAMPLES = None  # None: 4 on the quick preset, else 8

# %% [markdown]
# Imports, the run preset and the device.

# %%
import matplotlib.pyplot as plt
import pandas as pd
import torch
from IPython.display import display

import picollm_helpers as h

run = h.get_run_preset(PRESET)
device = h.pick_device()
enc = h.get_tokenizer()
num_samples = NUM_SAMPLES or (4 if run.name == "quick" else 8)
print(f"preset {run.name}, device {h.describe_device(device)}")

# %% [markdown]
# ## 1. The models
# Notebooks 01 to 03 saved their trained models in `artefacts/checkpoints/`. We load every
# one that is there. If none is (this notebook run on its own), we train a small LSTM on the
# custom corpus first and save it, so the lab always has a model.

# %%
if not list(h.CHECKPOINTS_DIR.glob("*.pt")):
    print("No checkpoints yet: training a small LSTM on data/custom_corpus.")
    corpus = h.build_corpus(enc, run.block_size, tinystories_weight=0.0, input_dir="data/custom_corpus", seed=SEED)
    h.seed_everything(SEED)
    lstm = h.LSTMSeqModel(enc.n_vocab, embed_size=run.embed_size, hidden_size=run.embed_size).to(device)
    h.train_for_steps(lstm, corpus, steps=run.train_steps, batch_size=run.batch_size, learning_rate=1e-3, seed=SEED)
    h.save_checkpoint(lstm, h.CHECKPOINTS_DIR / "lstm.pt", trained_on="data/custom_corpus", steps=run.train_steps)
models = h.load_checkpoints(h.CHECKPOINTS_DIR, device)
pd.DataFrame({name: {"family": h.family_of(model), "parameters": h.count_parameters(model),
                     "trained on": model.checkpoint_metadata.get("trained_on", ""),
                     "steps": model.checkpoint_metadata.get("steps", "")}
              for name, model in models.items()}).T

# %% [markdown]
# ## 2. What p does to the next-token distribution
# The bars are the 30 most probable tokens after the prompt, for the first model. The coloured
# ones form the nucleus at p = 0.8; the dashed line is the cut-off. A lower p keeps fewer
# tokens, so the text becomes safer and more repetitive.

# %%
first_name, first_model = next(iter(models.items()))
logits = h.next_token_logits(first_model, enc.encode(PROMPT))
for p in (0.5, 0.8, 0.95, 1.0):
    print(f"p = {p:<4}: the nucleus holds {h.nucleus_size(logits, p):,} of {enc.n_vocab:,} tokens")
h.plot_next_token_distribution(logits, enc, p=0.8).set_title(f"{first_name}: next token after {PROMPT!r}")
plt.show()

# %% [markdown]
# ## 3. The notes' comparison, measured
# 20 new tokens from the prompt at greedy, p = 0.8, 0.95 and 1.0, several samples each (seeds
# SEED, SEED + 1, ...). Per setting: distinct-1 and distinct-2 (unique tokens and bigrams over
# all of them: higher is more varied), the mean log-probability the model gave its own
# samples (higher is safer), and the mean nucleus size. Stored in
# `artefacts/sampling_diversity.json`.

# %%
diversity = h.sampling_diversity(models, enc, preset=run.name, device=device, prompt=PROMPT, top_ps=TOP_PS,
                                 num_samples=num_samples, seed=SEED)
rows = pd.DataFrame(diversity["results"]["rows"])
rows.drop(columns=["samples", "top_p"]).set_index(["model", "setting"]).round(3)

# %% [markdown]
# The same numbers as plots, one line per model:

# %%
h.save_figure(h.plot_sampling_diversity(diversity), "sampling_diversity")
plt.show()

# %% [markdown]
# Two samples per setting for the first model:

# %%
for row in diversity["results"]["rows"]:
    if row["model"] == first_name:
        for text in row["samples"][:2]:
            print(f"{row['setting']:<9} {text!r}")

# %% [markdown]
# What the measurements say, computed from the artefact:

# %%
for name, runs in rows.groupby("model", sort=False):
    greedy, full = runs.iloc[0], runs.iloc[-1]
    print(f"{name}: distinct-2 goes from {greedy['distinct_2']:.2f} (greedy) to {full['distinct_2']:.2f} (p = 1.0), "
          f"mean log-probability from {greedy['mean_logprob']:.2f} to {full['mean_logprob']:.2f} nats; "
          f"{full['distinct_samples']} of {num_samples} samples at p = 1.0 differ.")

# %% [markdown]
# ## 4. The lab
# Move the sliders. Every change of model, prompt, p, temperature or seed draws a new
# continuation and redraws the next-token distribution after the prompt: the nucleus in
# colour, the cut-off dashed. **Resample** moves to the next seed; type a seed to get a draw back.

# %%
lab = h.sampling_lab(models, enc, prompt=PROMPT, p=0.9, seed=SEED)
display(lab)
