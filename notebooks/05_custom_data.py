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
# # 05 · Your own text
#
# You have some text of your own, and you want a model that writes like it. Two questions,
# measured on text the models never trained on:
#
# 1. **How much text does a model need?** The same small Transformer trains for the same number
#    of steps on the first few thousand, then tens and hundreds of thousands of tokens of the
#    plays. Too little text is seen again and again, and learned by heart. Beside each run, what
#    counting gets from exactly the same tokens (n-gram count models fitted on them): how much
#    does learning add, and does it add anything on 4,096 tokens?
# 2. **Should you blend your text with a larger corpus?** The course notes planned to
#    "compare base-only and blended corpora". Here your text (the bundle's custom corpus, five
#    files of micro-stories, about 5,000 tokens) is mixed with the plays at shares from 0% to
#    100%, and every mix is measured on lines of your text that no run trains on, and on *The
#    Winter's Tale*.
#
# Every point is measured with more than one seed; a difference is a finding only when it is
# larger than twice its seed-to-seed noise.

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
# `INPUT_DIR` is your text: a folder of `.txt` files, one example a line (a bare name is looked
# up in the bundle's `data/`). `PROMPT` is what the blended models continue, side by side.
# `CHECKPOINT_DIR` keeps the study's progress, so that a rerun after an interruption picks up
# where it stopped (on Colab, point it at your mounted Drive). With `REDRAW_ONLY = True`
# nothing trains: the figures are drawn from the stored artefact.

# %% tags=["parameters"]
PRESET = None
INPUT_DIR = "custom_corpus"
PROMPT = "The harbor"
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
budget = h.OWN_TEXT_BUDGETS[run.name]
checkpoint_dir = CHECKPOINT_DIR or h.CHECKPOINTS_DIR
print(f"preset {run.name}, device {h.describe_device(device)}, seeds {h.study_seeds(run)}")
budget

# %% [markdown]
# What training will take: the memory each model this notebook trains needs at this preset's
# sizes, estimated before any run (`h.estimate_training_memory`: weights, gradients, AdamW's
# state, the activations kept for the backward pass, the logits; with the full vocabulary's
# head, an upper bound for a compact one).

# %%
h.memory_table("05", run, h.resolve_precision("auto", device)).round(3)

# %% [markdown]
# ## 1. The texts
# The base corpus is the plays the bundle ships; your text is every `.txt` under `INPUT_DIR`.
# A fifth of your lines (a seeded choice, the same for every run) is held out.

# %%
blend = h.build_corpus(enc, run.block_size,
                       h.TrainingText(base_weight=0.5, input_dir=INPUT_DIR, test_fraction=h.HELD_OUT_LINES))
for stream in blend.train:
    print(f"{stream.name}: {len(stream):,} training tokens")
print(f"held out: {blend.num_heldout_tokens:,} tokens of your lines")
for path in h.find_text_files(INPUT_DIR):
    print(f"  {path.name}: {len(h.read_examples(path))} lines, e.g. {h.read_examples(path)[0][:70]!r}")

# %% [markdown]
# ## 2. The study
# Both questions, every point with every seed, the preset's study Transformer (small, so that
# many runs fit the budget) for the same steps in every run. Stored in `artefacts/own_text.json`.

# %%
study = (h.read_artefact("own_text") if REDRAW_ONLY
         else h.own_text_study(enc, run, device=device, input_dir=INPUT_DIR, prompt=PROMPT,
                               checkpoint_dir=checkpoint_dir))
runs = h.runs_table(study)

# %% [markdown]
# ## 3. How much text
# Held-out loss on *The Winter's Tale* at each run's best evaluation (where early stopping would
# keep it) and at its end, and the training loss, against how many tokens of the plays the model
# trained on (log scale), after the same number of steps. With little text the training loss falls
# far below the held-out loss: the model has learned its text, not the language. The dashed black
# and dotted grey lines are the best and the unigram count models fitted on each slice. Error
# bars are ±1 standard deviation over the seeds.

# %%
h.show_figure("own_text_data", study)
plt.show()
runs[runs["question"] == "data"].groupby("tokens")[["train_loss", "best_standard_loss", "standard_loss"]].agg(
    ["mean", "std"]).round(3)

# %% [markdown]
# ## 4. Blending your text with the plays
# Left: held-out loss on your held-out lines (at each run's best evaluation: a run on your text
# alone learns your short text by heart, and early stopping is what you would do) and on *The
# Winter's Tale* (at the end), against your text's share of the training windows, with the count
# models of each mix's text (the plays, your text, or both) scored on the same lines. Right: the
# same as a trade-off: each point is a mix, further down is better on your text, further left
# better on the plays.

# %%
h.show_figure("own_text_blend", study)
plt.show()
runs[runs["question"] == "blend"].groupby("share")[["best_your_loss", "your_loss", "standard_loss"]].agg(
    ["mean", "std"]).round(3)

# %% [markdown]
# What each mix writes, continuing the same prompt (the first seed's model, nucleus sampling at
# p = 0.8):

# %%
blends = runs[(runs["question"] == "blend") & (runs["seed"] == runs["seed"].min())].sort_values("share")
for share, sample in zip(blends["share"], blends["sample"]):
    print(f"{share:>4.0%} your text: {sample!r}")

# %% [markdown]
# ## 5. What the study teaches
# Each lesson is computed from the runs: the effect in the claim's direction, averaged over the
# seeds, with its seed-to-seed standard deviation. It holds when the effect is more than twice
# that noise; otherwise it is "not resolved at this budget".

# %%
h.print_lessons(study)

# %% [markdown]
# The course notes' own sweep (training loss of the LSTM and GPT-oss on the first 3, 63, 123 and
# 185 lines of the custom corpus) stays runnable from the command line, as the notes ran it:
# `python3 pico-llm.py --input_dir data/custom_corpus --custom_sweep_log my_sweep.json`. It
# measures training loss on a few thousand tokens, so more data looks worse there; the study
# above measures held-out loss instead.

# %% [markdown]
# ## Questions you may be asked
# What a presenter may be asked about this notebook, the course notes' interview questions among
# them where they fit. Every number in an answer is read from this run or its artefacts. Click a
# question to see its answer.

# %%
h.own_text_questions(study)
