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
# # 06 · Overfitting: watching a model learn its text by heart
#
# With little text and many steps, a model stops learning the language and starts learning
# the text. Its training loss keeps falling; its loss on text it has never seen falls, then
# turns up. We train the preset's study Transformer on a small slice of the plays (their first
# 65,536 tokens on the `cpu` preset, a play and a half), far past that turning point, and measure
# it on *The Winter's Tale*, which no run of this bundle ever trains on. Beside it, what counting
# gets from the same slice: n-gram count models fitted on exactly those tokens. At its turning
# point the model has learnt more than counting does from that text; past it, it gives that back.
# Then we try the usual remedies on the same slice, with the same seeds and steps: dropout, a
# stronger weight decay, four times the text, and early stopping.
#
# Every point is measured with more than one seed. A difference is a finding only when it is
# larger than twice its seed-to-seed noise; the notebook says so when it is not.

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
# `PRESET` sets the budget (`quick` exercises the code in seconds; `cpu` is the laptop study,
# about three minutes; `gpu` trains longer). `CHECKPOINT_DIR` keeps the study's progress: if
# the run is interrupted (a Colab session ends, a laptop sleeps), running the notebook again
# picks up where it stopped. On Colab, point it at your mounted Drive. With `REDRAW_ONLY = True`
# nothing trains: the figures are drawn from the stored artefact.

# %% tags=["parameters"]
PRESET = None
CHECKPOINT_DIR = None  # None: artefacts/checkpoints; on Colab, e.g. "/content/drive/MyDrive/pico-llm"
REDRAW_ONLY = False

# %% [markdown]
# Imports, the run preset, the device, and the study's budget on this preset.

# %%
import matplotlib.pyplot as plt

import picollm_helpers as h

run = h.get_run_preset(PRESET)
device = h.pick_device()
enc = h.get_tokenizer()
budget = h.OVERFITTING_BUDGETS[run.name]
checkpoint_dir = CHECKPOINT_DIR or h.CHECKPOINTS_DIR
print(f"preset {run.name}, device {h.describe_device(device)}, seeds {h.study_seeds(run)}")
budget

# %% [markdown]
# What training will take: the memory each model this notebook trains needs at this preset's
# sizes, estimated before any run (`h.estimate_training_memory`: weights, gradients, AdamW's
# state, the activations kept for the backward pass, the logits; with the full vocabulary's
# head, an upper bound for a compact one).

# %%
h.memory_table("06", run, h.resolve_precision("auto", device)).round(3)

# %% [markdown]
# ## 1. The study
# Four runs per seed, each the preset's study Transformer for the same steps: no remedy, dropout and
# weight decay on the slice, and the same steps on four times the text (more data). Each is
# evaluated on a fixed slice of *The Winter's Tale* every few steps. Early stopping needs no
# run of its own: it is the plain run, stopped where its held-out loss was lowest.
# Everything is stored in `artefacts/overfitting.json`.

# %%
study = (h.read_artefact("overfitting") if REDRAW_ONLY
         else h.overfitting_study(enc, run, device=device, checkpoint_dir=checkpoint_dir))
config = study["config"]
print(f"the slice: {config['slice']}; more data: {config['more_data']}; held out: {config['heldout_tokens']:,} "
      f"tokens of {config['heldout']}; {config['budget']['steps']} steps of {config['budget']['batch_size']} windows "
      f"of {config['block_size']} tokens")

# %% [markdown]
# ## 2. The turning point, and the remedies
# Left: the plain run. The training loss keeps falling; the held-out loss falls, reaches its
# lowest at the turning point (dashed red), then rises: past it, every step makes the model worse
# on text it never saw. The grey and black lines are the count models of the same slice. Right:
# where each remedy ends, beside early stopping, and what counting gets from the slice and from
# four times the slice. Bands and error bars are ±1 standard deviation over the seeds.

# %%
h.show_figure("overfitting", study)
plt.show()

# %% [markdown]
# The same numbers as a table: each remedy's final held-out loss (mean and seed-to-seed standard
# deviation), its lowest, and the step of its lowest.

# %%
runs = h.runs_table(study)
runs.groupby("remedy", sort=False)[["final_loss", "lowest_loss", "turning_step", "final_train_loss"]].agg(
    ["mean", "std"]).round(3)

# %% [markdown]
# ## 3. What the study teaches
# Each lesson is computed from the runs: the effect in the claim's direction, averaged over the
# seeds, with its seed-to-seed standard deviation. It holds when the effect is more than twice
# that noise; otherwise it is "not resolved at this budget", however the means look.

# %%
h.print_lessons(study)

# %% [markdown]
# ## Questions you may be asked
# What a presenter may be asked about this notebook, the course notes' interview questions among
# them where they fit. Every number in an answer is read from this run or its artefacts. Click a
# question to see its answer.

# %%
h.overfitting_questions(study)
