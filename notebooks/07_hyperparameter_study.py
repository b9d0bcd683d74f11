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
# # 07 · A hyperparameter study: what matters in a few seconds of a laptop
#
# The course notes planned a grid of embedding sizes, block sizes, depths and learning rates.
# What a student on a laptop pays is seconds, so here every config trains for the *same
# seconds* on the plays, and is measured on *The Winter's Tale*, which no run trains on. A
# wider or deeper model learns more from each token but sees fewer tokens in those seconds;
# the study shows which wins.
#
# * **learning rate × width**: every pair, as a heat map whose cells give the mean held-out
#   loss and its seed-to-seed standard deviation;
# * **block size and depth**: one at a time, from the preset's own settings (the centre);
# * **quality against speed**: held-out loss against training tokens per second.
#
# The learning rate is the peak of the bundle's recipe (warm-up, then cosine decay), and a
# batch always holds the same number of tokens, whatever the block size.

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
# `PRESET` sets the budget. `CHECKPOINT_DIR` keeps the study's progress, so that a rerun after
# an interruption picks up where it stopped (on Colab, point it at your mounted Drive). With
# `REDRAW_ONLY = True` nothing trains: the figures are drawn from the stored artefact.

# %% tags=["parameters"]
PRESET = None
CHECKPOINT_DIR = None  # None: artefacts/checkpoints; on Colab, e.g. "/content/drive/MyDrive/pico-llm"
REDRAW_ONLY = False

# %% [markdown]
# Imports, the run preset, the device, and the settings tried on this preset.

# %%
import matplotlib.pyplot as plt

import picollm_helpers as h

run = h.get_run_preset(PRESET)
device = h.pick_device()
enc = h.get_tokenizer()
budget = h.HYPERPARAMETER_BUDGETS[run.name]
checkpoint_dir = CHECKPOINT_DIR or h.CHECKPOINTS_DIR
configs = h.hyperparameter_configs(run, h.study_seeds(run))
print(f"preset {run.name}, device {h.describe_device(device)}, {len(configs)} runs of {budget.seconds:g} s "
      f"(seeds {h.study_seeds(run)}); the centre: {h.hyperparameter_centre(run)}")
budget

# %% [markdown]
# What training will take: the memory each model this notebook trains needs at this preset's
# sizes, estimated before any run (`h.estimate_training_memory`: weights, gradients, AdamW's
# state, the activations kept for the backward pass, the logits; with the full vocabulary's
# head, an upper bound for a compact one).

# %%
h.memory_table("07", run, h.resolve_precision("auto", device)).round(3)

# %% [markdown]
# ## 1. The study
# Every config trains for the same seconds, with every seed, and is evaluated once at the end
# on a fixed slice of *The Winter's Tale*. Stored in `artefacts/hyperparameters.json`.

# %%
study = (h.read_artefact("hyperparameters") if REDRAW_ONLY
         else h.hyperparameter_study(enc, run, device=device, checkpoint_dir=checkpoint_dir))
runs = h.runs_table(study)
failed = [run_ for run_ in study["results"]["runs"] if run_["status"] == "failed"]
print(f"{len(runs)} runs, {len(failed)} failed; the best cell: {study['results']['best']}")
for run_ in failed:
    print("  failed:", run_["config"], run_["error"])

# %% [markdown]
# ## 2. Learning rate × width
# Each cell: the mean held-out loss over the seeds, and below it their standard deviation. Two
# cells whose means differ by less than about twice their deviations are not different at this
# budget. The best cell is outlined.

# %%
h.show_figure("hyperparameter_heatmap", study)
plt.show()

# %% [markdown]
# ## 3. Block size and depth
# From the centre, one setting at a time: the tokens of context each window gives, and the
# number of Transformer blocks.

# %%
h.show_figure("hyperparameter_shape", study)
plt.show()

# %% [markdown]
# ## 4. Quality against speed
# A wider model costs more per token, so it sees fewer tokens in the same seconds. Lower is
# better; to the right is faster. Colours are widths, markers learning rates.

# %%
h.show_figure("hyperparameter_speed", study)
plt.show()

# %% [markdown]
# Every config, mean and seed-to-seed standard deviation, best first:

# %%
settings = ["learning_rate", "width", "block_size", "depth"]
table = runs.groupby(settings)[["loss", "bpc", "tokens_per_s", "steps"]].agg(["mean", "std"])
table.sort_values(("loss", "mean")).round(3)

# %% [markdown]
# ## 5. What the study teaches
# Each lesson is computed from the runs: the effect in the claim's direction, averaged over the
# seeds, with its seed-to-seed standard deviation. It holds when the effect is more than twice
# that noise; otherwise it is "not resolved at this budget".

# %%
h.print_lessons(study)
