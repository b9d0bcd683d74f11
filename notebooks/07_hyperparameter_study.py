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
# # 07 · A hyperparameter study
#
# Which settings matter for a small model at a fixed budget? The course notes planned a grid:
# embedding size {256, 512, 1024}, block size {32, 64, 128}, LSTM layers {1, 2}, Transformer
# heads {4, 8} and learning rate {5e-4, 1e-3}, for the LSTM and GPT-oss. Each config trains for
# the same number of steps on the custom corpus, with a fifth of its lines held out; we record
# train and held-out loss, tokens/s and a sample, in `artefacts/hparam_sweep.json`. The
# learning rate is the peak of the bundle's recipe (warm-up, then cosine decay).
#
# The models train on random windows of the packed text, so the block size is how many
# tokens of context each window gives: a block of 128 spans several lines of the corpus, a
# block of 32 about one.
#
# The full grid is 72 trainings: the `gpu` preset runs it all. On a laptop (`cpu`) we run a
# principled subset: embedding size × learning rate in full (the two the notes expected to
# matter most, and a heat map needs both axes) at block 64 with one LSTM layer or four heads,
# then one factor at a time from that centre (block 32 and 128, two layers, eight heads): 18
# trainings. `quick` runs four, only to exercise the code.

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
# With `REDRAW_ONLY = True` the plots are redrawn from the artefact. An interrupted sweep
# resumes: rerun the cell and the configs already finished are kept.

# %% tags=["parameters"]
PRESET = None
SEED = 0
REDRAW_ONLY = False

# %% [markdown]
# Imports, the run preset and the device.

# %%
import matplotlib.pyplot as plt

import picollm_helpers as h

run = h.get_run_preset(PRESET)
device = h.pick_device()
enc = h.get_tokenizer()
print(f"preset {run.name}, device {h.describe_device(device)}, {len(h.hparam_configs(run))} configs")

# %% [markdown]
# What training will take: the memory each model this notebook trains needs at this preset's
# sizes, estimated before any run (`h.estimate_training_memory`: weights, gradients, AdamW's
# state, the activations kept for the backward pass, the logits; with the full vocabulary's
# head, an upper bound for a compact one).

# %%
h.memory_table("07", run, h.resolve_precision("auto", device)).round(3)

# %% [markdown]
# ## 1. The sweep
# `depth` is the number of LSTM layers for the LSTM and the number of attention heads for GPT-oss.

# %%
sweep = h.read_artefact("hparam_sweep") if REDRAW_ONLY else h.hparam_sweep(enc, run, device=device, seed=SEED)
runs = h.ok_runs(sweep)
failed = [run_ for run_ in sweep["results"]["runs"] if run_["status"] == "failed"]
print(f"{len(runs)} configs trained for {sweep['config']['steps']} steps each; {len(failed)} failed")
for run_ in failed:
    print("  failed:", run_["config"], run_["error"])

# %% [markdown]
# ## 2. Heat maps: held-out loss over embedding size and learning rate

# %%
h.show_figure("hparam_heatmaps", sweep)
plt.show()

# %% [markdown]
# ## 3. The best configs
# The three lowest held-out losses per model.

# %%
columns = ["model", "embed_size", "block_size", "depth", "learning_rate", "final_loss", "final_test_loss",
           "tokens_per_s", "sample"]
best = runs.sort_values("final_test_loss").groupby("model", sort=False).head(3)[columns]
best

# %% [markdown]
# ## 4. Quality against speed
# A bigger model learns more per step but trains fewer tokens per second.

# %%
h.show_figure("hparam_quality_speed", sweep)
plt.show()

# %% [markdown]
# ## 5. Conclusion, computed from the artefact

# %%
for model, rows in runs.groupby("model", sort=False):
    top = rows.loc[rows["final_test_loss"].idxmin()]
    fastest = rows.loc[rows["tokens_per_s"].idxmax()]
    print(f"{model}: best held-out loss {top['final_test_loss']:.3f} with embedding {top['embed_size']}, block "
          f"{top['block_size']}, depth {top['depth']}, learning rate {top['learning_rate']:g}; fastest config "
          f"{fastest['tokens_per_s']:,.0f} tokens/s (embedding {fastest['embed_size']}) vs "
          f"{top['tokens_per_s']:,.0f} for the best.")
    by_block = rows[rows["embed_size"].eq(256) & rows["learning_rate"].eq(1e-3) & rows["depth"].eq(rows["depth"].min())]
    print("  held-out loss by block size (embedding 256, learning rate 1e-3): " + ", ".join(
        f"{row['block_size']}: {row['final_test_loss']:.3f}" for _, row in by_block.sort_values("block_size").iterrows()))
