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
# # 06 · Overfitting: watching a model memorise
#
# With little training text and many steps, a model stops learning the language and starts
# learning the text. The training loss keeps falling; the loss on held-out text falls, then
# turns upward. This notebook trains the LSTM and GPT-oss on 40 lines of the custom corpus
# (24 to train on, 16 held out, a seeded choice of whole lines) for up to 100 steps on random
# windows of the packed text, marks where the held-out loss turns, and measures memorisation:
# the share of a sample's 4-token sequences copied verbatim from the training text.

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
# `PRESET` sets the budget (`quick` trains 20 steps to exercise the code; `cpu` and `gpu`
# the full 100). With `REDRAW_ONLY = True` the plots are redrawn from the artefact.

# %% tags=["parameters"]
PRESET = None
SEED = 0
SEQUENCES = 40
REDRAW_ONLY = False

# %% [markdown]
# Imports, the run preset and the device.

# %%
import matplotlib.pyplot as plt
import pandas as pd

import picollm_helpers as h

run = h.get_run_preset(PRESET)
device = h.pick_device()
enc = h.get_tokenizer()
max_steps = 20 if run.name == "quick" else 100
print(f"preset {run.name}, device {h.describe_device(device)}, up to {max_steps} steps")

# %% [markdown]
# What training will take: the memory each model this notebook trains needs at this preset's
# sizes, estimated before any run (`h.estimate_training_memory`: weights, gradients, AdamW's
# state, the activations kept for the backward pass, the logits; with the full vocabulary's
# head, an upper bound for a compact one).

# %%
h.memory_table("06", run, h.resolve_precision("auto", device)).round(3)

# %% [markdown]
# ## 1. The sweep
# Held-out loss every 5 steps; a greedy sample from "The" every quarter of the run. Stored in
# `artefacts/overfitting_sweep.json`.

# %%
if REDRAW_ONLY:
    sweep = h.read_artefact("overfitting_sweep")
else:
    sweep = h.overfitting_sweep(enc, run, device=device, sequences=SEQUENCES, max_steps=max_steps,
                                sample_every=max_steps // 4, seed=SEED)
print(f"{sweep['config']['train_tokens']:,} training and {sweep['config']['heldout_tokens']:,} held-out tokens "
      f"from the first {sweep['config']['sequences']} lines")

# %% [markdown]
# ## 2. Train and held-out loss
# The dashed line marks the step with the lowest held-out loss: past it, more training makes
# the model worse on text it has not seen.

# %%
h.show_figure("overfitting_sweep", sweep)
plt.show()

# %% [markdown]
# ## 3. Memorisation
# Greedy samples as training goes on, with the share of their 4-token n-grams found verbatim
# in the training sequences.

# %%
samples = pd.DataFrame([{"model": run_["config"]["model"], **sample}
                        for run_ in sweep["results"]["runs"] if run_["status"] == "ok" for sample in run_["samples"]])
samples

# %% [markdown]
# ## 4. Conclusion, computed from the artefact

# %%
for _, row in h.ok_runs(sweep).iterrows():
    copied = [sample["copied_4gram_fraction"] for sample in row["samples"]]
    print(f"{row['model']}: lowest held-out loss {row['best_test_loss']:.2f} at step {row['best_test_step']}, "
          f"{row['final_test_loss']:.2f} at the end, while the training loss reached {row['final_train_loss']:.2f}; "
          f"copied 4-grams went from {copied[0]:.0%} to {copied[-1]:.0%}.")
