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
# `PRESET` sets the budget (`quick`, `cpu` or `gpu`). The comparison draws `NUM_SAMPLES`
# continuations of 20 tokens from `PROMPT` per model and setting (`None` is greedy). The models
# trained on the plays, so the prompt is a speaker's name and a line break: they write the
# speech that follows. `CHECKPOINT_DIR` is where notebooks 01 to 03 saved their models.

# %% tags=["parameters"]
PRESET = None
SEED = 0
PROMPT = "ROSALIND.\n"
CHECKPOINT_DIR = None  # None: artefacts/checkpoints; on Colab, the folder notebooks 01 to 03 saved their models in
TOP_PS = [None, 0.5, 0.8, 0.95, 1.0]
NUM_SAMPLES = None  # None: 2 on the quick preset, else 8

# %% [markdown]
# Imports, the run preset and the device.

# %%
import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import display

import picollm_helpers as h

run = h.get_run_preset(PRESET)
device = h.pick_device()
enc = h.get_tokenizer()
num_samples = NUM_SAMPLES or (2 if run.name == "quick" else 8)
checkpoint_dir = CHECKPOINT_DIR or h.CHECKPOINTS_DIR
print(f"preset {run.name}, device {h.describe_device(device)}")

# %% [markdown]
# What training will take: the memory each model this notebook trains needs at this preset's
# sizes, estimated before any run (`h.estimate_training_memory`: weights, gradients, AdamW's
# state, the activations kept for the backward pass, the logits; with the full vocabulary's
# head, an upper bound for a compact one).

# %%
h.memory_table("04", run, h.resolve_precision("auto", device)).round(3)

# %% [markdown]
# ## 1. The models
# Notebooks 01 to 03 saved their trained models in `artefacts/checkpoints/`. We load every
# one that is there. The one to listen to is `writer`: the Transformer notebook 03 trained
# long enough to write. If it is missing (this notebook run on its own), we train it first,
# as notebook 03 does.

# %%
if not (checkpoint_dir / "transformer_writer.pt").is_file():
    print("No writer yet: training the preset's Transformer as notebook 03 does.")
    h.train_writer(enc, run, device=device, seed=SEED, checkpoint_dir=checkpoint_dir)
models = h.load_checkpoints(checkpoint_dir, device)
pd.DataFrame({name: {"family": h.family_of(model), "parameters": h.count_parameters(model),
                     "vocabulary": h.describe_vocabulary(model),
                     "trained on": model.checkpoint_metadata.get("trained_on", ""),
                     "steps": model.checkpoint_metadata.get("steps", "")}
              for name, model in models.items()}).T

# %% [markdown]
# ## 2. What p does to the next-token distribution
# The bars are the 30 most probable tokens after the prompt, for the writer. The coloured
# ones form the nucleus at p = 0.8; the dashed line is the cut-off. A lower p keeps fewer
# tokens, so the text becomes safer and more repetitive.

# %%
first_name, first_model = "writer", models["writer"]
log_probs = h.next_token_log_probs(first_model, enc.encode(PROMPT))
for p in (0.5, 0.8, 0.95, 1.0):
    print(f"p = {p:<4}: the nucleus holds {h.nucleus_size(log_probs, p):,} of {enc.n_vocab:,} tokens")
next_token = h.write_artefact("next_token", preset=run.name, device=device,
                              config={"model": first_name, "prompt": PROMPT},
                              results=h.next_token_summary(log_probs, enc, p=0.8))
h.show_figure("next_token", h.read_artefact(next_token))
plt.show()

# %% [markdown]
# ## 3. The notes' comparison, measured
# 20 new tokens from the prompt at greedy, p = 0.8, 0.95 and 1.0, several samples each (seeds
# SEED, SEED + 1, ...). Per setting: distinct-1 and distinct-2 (unique tokens and bigrams over
# all of them: higher is more varied), the mean log-probability the model gave its own
# samples (higher is safer), the mean nucleus size, and the share of the samples' words that
# are words (Debian's English word list and the words of the bundle's texts; the latter alone
# when the list is not installed). Stored in `artefacts/sampling_diversity.json`.

# %%
words, word_list = h.reading_words()
diversity = h.sampling_diversity(models, enc, preset=run.name, device=device, words=words, word_list=word_list,
                                 prompt=PROMPT, top_ps=TOP_PS, num_samples=num_samples, seed=SEED)
print(f"words checked against {word_list}")
rows = pd.DataFrame(diversity["results"]["rows"])
rows.drop(columns=["samples", "top_p"]).set_index(["model", "setting"]).round(3)

# %% [markdown]
# The same numbers as plots, one line per model:

# %%
h.show_figure("sampling_diversity", diversity)
plt.show()

# %% [markdown]
# Two samples per setting for the writer:

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
          f"mean log-probability from {greedy['mean_logprob']:.2f} to {full['mean_logprob']:.2f} nats, English words "
          f"from {greedy['word_share']:.0%} to {full['word_share']:.0%}; {full['distinct_samples']} of {num_samples} "
          "samples at p = 1.0 differ.")

# %% [markdown]
# ## 4. The lab
# Move the sliders. Every change of model, prompt, p, temperature or seed draws a new
# continuation and redraws the next-token distribution after the prompt: the nucleus in
# colour, the cut-off dashed. **Resample** moves to the next seed; type a seed to get a draw
# back. The lab opens on the writer at p = 0.5; the dropdown offers every model notebooks 01
# to 03 trained, so you can hear the difference training makes.

# %%
lab = h.sampling_lab(models, enc, prompt=PROMPT, p=0.5, seed=SEED, model="writer")
display(lab)
