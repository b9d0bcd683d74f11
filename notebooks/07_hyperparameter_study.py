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
# # 07 · A hyperparameter study: how wide a model for the compute you can afford
#
# The course notes planned a grid of embedding sizes, block sizes, depths and learning rates.
# The question a student's budget poses is simpler and deeper: for the compute I can afford,
# how wide should my model be? Scaling studies of large models found that the best size grows
# with the compute budget (Kaplan et al. 2020, Hoffmann et al. 2022): a small model learns
# fastest at first, a larger one ends lower given more compute. Here we measure it on the plays,
# at three budgets of training compute spanning 16x, every point with two seeds, on *The
# Winter's Tale*, which no run trains on, beside what counting (n-gram count models fitted on the
# same plays) scores on the same tokens.
#
# * **the learning rate of each width**: a wider model wants a smaller step. Each width tries a
#   grid of rates (the narrowest width's grid, halved for every doubling of width) on the same
#   number of training tokens; the best must lie inside the grid, never at its edge (the grid
#   grows one rate where it does, and the artefact warns if it still does);
# * **the best width at each budget**, each width at its own rate: does it grow with the budget?
# * **quality against seconds**: the same runs, for a budget counted in seconds.
#
# Budgets are counted in FLOPs: 6 per weight a token meets in a matrix product, forward and
# backward, plus the attention scores (`h.flops_per_token`). A budget in seconds depends on the
# machine; a budget in tokens would hand every width the same text, and at equal tokens a wider
# model always learns more, at a higher cost per token. At equal FLOPs a narrower model trains on
# more tokens: the question is which trade wins. A width that a budget would train for more than
# about eight passes over the plays is left out at that budget. The learning rate is the peak of
# the bundle's recipe (warm-up, then cosine decay to the end of each run's own budget).

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
print(f"preset {run.name}, device {h.describe_device(device)}, seeds {h.study_seeds(run)}; widths {budget.widths}, "
      f"budgets {[h.flops_words(flops) for flops in budget.budgets]}; rates tried first "
      f"{ {width: budget.rates_for(width) for width in budget.widths} }")
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
# First each width's learning rate, on the same number of training tokens
# (`artefacts/hyperparameter_rates.json`), then every width at every budget of FLOPs with the rate
# found for it (`artefacts/hyperparameters.json`). Each run is evaluated once at its end on a fixed
# slice of *The Winter's Tale*.

# %%
study = (h.read_artefact("hyperparameters") if REDRAW_ONLY
         else h.hyperparameter_study(enc, run, device=device, checkpoint_dir=checkpoint_dir))
rates = h.read_artefact("hyperparameter_rates")
runs = h.runs_table(study)
failed = [run_ for run_ in study["results"]["runs"] if run_["status"] == "failed"]
print(f"{len(runs)} runs, {len(failed)} failed; the learning rate of each width: {study['config']['learning_rates']}")
for warning in study["config"]["rate_warnings"]:
    print("  warning:", warning)
for run_ in failed:
    print("  failed:", run_["config"], run_["error"])

# %% [markdown]
# ## 2. The learning rate of each width
# Each cell: the mean held-out loss over the seeds at the tuning budget, and below it their
# standard deviation; the rate chosen for each width is outlined. Two cells whose means differ
# by less than about twice their deviations are not different at this budget. The count models'
# losses are marked on the colour bar.

# %%
h.show_figure("hyperparameter_heatmap", rates)
plt.show()
h.print_lessons(rates)

# %% [markdown]
# ## 3. The best width at each budget
# Held-out loss against training compute (log scale), a line per width, each at its own learning
# rate; a star marks the best width at each budget. The lines of the count models fitted on the
# same plays show what learning adds to counting.

# %%
h.show_figure("hyperparameter_budgets", study)
plt.show()

# %% [markdown]
# ## 4. Quality against seconds
# The same runs against the seconds they took: a narrower model trains more tokens per second,
# so in seconds it stays ahead longer than in tokens.

# %%
h.show_figure("hyperparameter_speed", study)
plt.show()

# %% [markdown]
# Every run, mean and seed-to-seed standard deviation:

# %%
table = runs.groupby(["flops", "width", "learning_rate", "tokens"])[["loss", "bpc", "seconds", "tokens_per_s"]].agg(
    ["mean", "std"])
table.round(3)

# %% [markdown]
# ## 5. What the study teaches
# Each lesson is computed from the runs: the effect in the claim's direction, averaged over the
# seeds, with its seed-to-seed standard deviation. It holds when the effect is more than twice
# that noise; otherwise it is "not resolved at this budget". Each says where its runs stand
# against counting.

# %%
h.print_lessons(study)
crossing = study["results"]["crossing_flops"]
print("The best width at each budget: "
      + ", ".join(f"{h.flops_words(float(flops))}: {width}" for flops, width in study["results"]["best_widths"].items())
      + (f"; the widths cross near {h.flops_words(crossing)}." if crossing else "; the best width does not change."))
for warning in study["results"]["width_warnings"]:
    print("  warning:", warning)

# %% [markdown]
# ## Questions you may be asked
# What a presenter may be asked about this notebook, the course notes' interview questions among
# them where they fit. Every number in an answer is read from this run or its artefacts. Click a
# question to see its answer.

# %%
h.hyperparameter_questions(study, rates)
