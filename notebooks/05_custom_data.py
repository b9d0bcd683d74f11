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
# # 05 · Your own text: training on a custom corpus
#
# The bundle ships `data/custom_corpus/`: five files of short stories written for it (field
# notes, mini stories, an observatory journal, a city archive, a harbor diary). This notebook
# trains the LSTM and the GPT-oss Transformer on them, mixed with TinyStories when it can be
# reached, and asks two questions with measured sweeps: how does the loss depend on how much
# text there is, and on how long we train? To use your own text, put `.txt` files (one example
# a line) in a folder and set `INPUT_DIR` below.
#
# The text is packed: each file becomes a stream of token ids, its lines keeping their
# newlines, with `<|endoftext|>` after the file, and the models train on random windows of
# `block_size + 1` tokens of it, with the bundle's recipe and a compact output head (notebook
# 03 explains all three).
#
# The course notes' command for this run works from the repository root:
#
# ```
# OMP_NUM_THREADS=1 python3 pico-llm.py --tinystories_weight 0.25 --input_dir data/custom_corpus \
#     --block_size 64 --max_steps_per_epoch 1 --enable_transformer_gptoss
# ```

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
# `PRESET` sets the budget (`quick`, `cpu` or `gpu`). With `REDRAW_ONLY = True` the notebook
# trains nothing: it redraws every plot from the artefacts already in `artefacts/`.

# %% tags=["parameters"]
PRESET = None
SEED = 0
INPUT_DIR = "custom_corpus"  # a bare name is looked up in the bundle's data/ folder
TINYSTORIES_WEIGHT = 0.25
PROMPT = "The harbor"
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
print(f"preset {run.name}, device {h.describe_device(device)}")

# %% [markdown]
# What training will take: the memory each model this notebook trains needs at this preset's
# sizes, estimated before any run (`h.estimate_training_memory`: weights, gradients, AdamW's
# state, the activations kept for the backward pass, the logits; with the full vocabulary's
# head, an upper bound for a compact one).

# %%
h.memory_table("05", run, h.resolve_precision("auto", device)).round(3)

# %% [markdown]
# ## 1. The corpus
# Every line of every `.txt` file is one example. Offline, TinyStories is skipped with a
# one-line note and the run goes on with the custom text alone.

# %%
corpus = h.build_corpus(enc, run.block_size, base_weight=TINYSTORIES_WEIGHT,
                        tinystories_stories=run.tinystories_stories, input_dir=INPUT_DIR, seed=SEED)
for stream in corpus.train:
    print(f"{stream.name}: {len(stream):,} tokens")
for path in h.find_text_files(INPUT_DIR):
    print(f"  {path.name}: {len(h.read_examples(path))} lines, e.g. {h.read_examples(path)[0][:70]!r}")

# %% [markdown]
# ## 2. Samples before and after training
# A fresh model strings random tokens together. After training on the corpus its samples
# should use the corpus' own words: we measure the share of a sample's words that occur in
# the corpus.

# %%
corpus_words = set(h.words_of(" ".join(h.load_custom_examples(input_dir=INPUT_DIR))))
before_after = []
if not REDRAW_ONLY:
    for name in h.SWEEP_MODELS:
        h.seed_everything(SEED)
        model = h.sweep_model(name, corpus, run).to(device)
        for stage in ("before", "after"):
            if stage == "after":
                h.train_model(model, corpus, max_steps=run.train_steps, batch_size=run.batch_size, seed=SEED,
                              name=name)
            text = h.generate_text(model, enc, PROMPT, max_new_tokens=20, top_p=0.9, seed=SEED)
            before_after.append({"model": name, "stage": stage, "corpus words": h.word_share(
                text[len(PROMPT):], corpus_words), "sample": text})
pd.DataFrame(before_after)

# %% [markdown]
# ## 3. How much text? The corpus-size sweep
# The LSTM and GPT-oss each train for the same number of steps on the first 3, 63, 123 and 185
# lines of the corpus. A small corpus is easy to fit (low training loss) but teaches little;
# the sweep is stored in `artefacts/custom_data_sweep.json`.

# %%
if REDRAW_ONLY:
    size_sweep = h.read_artefact("custom_data_sweep")
else:
    size_sweep = h.custom_data_sweep(enc, run, device=device, input_dir=INPUT_DIR, prompt=PROMPT, seed=SEED)
h.show_figure("custom_data_sweep", size_sweep)
plt.show()
h.ok_runs(size_sweep)[["model", "sequences", "final_loss", "tokens_per_s", "corpus_word_fraction", "sample"]]

# %% [markdown]
# ## 4. How long? The training-budget sweep
# A fixed corpus, 40% of its lines held out (a seeded choice); 3, 9 or 18 steps (the notes'
# three epochs of 1, 3 or 6 steps each). The held-out loss says whether more steps still help.
# Stored in `artefacts/training_budget_sweep.json`.

# %%
if REDRAW_ONLY:
    budget_sweep = h.read_artefact("training_budget_sweep")
else:
    budget_sweep = h.training_budget_sweep(enc, run, device=device, input_dir=INPUT_DIR, seed=SEED)
h.show_figure("training_budget_sweep", budget_sweep)
plt.show()
h.ok_runs(budget_sweep)[["model", "steps_per_epoch", "final_loss", "final_test_loss", "tokens_per_s"]]

# %% [markdown]
# ## 5. Conclusion, computed from the artefacts

# %%
sizes = h.ok_runs(size_sweep)
budget = h.ok_runs(budget_sweep)
for name in h.SWEEP_MODELS:
    by_size = sizes[sizes["model"] == name].sort_values("sequences")
    by_budget = budget[budget["model"] == name].sort_values("steps_per_epoch")
    print(f"{name}: final training loss {by_size['final_loss'].iloc[0]:.2f} on {by_size['sequences'].iloc[0]} "
          f"sequences, {by_size['final_loss'].iloc[-1]:.2f} on {by_size['sequences'].iloc[-1]}; held-out loss "
          f"{by_budget['final_test_loss'].iloc[0]:.2f} after {3 * by_budget['steps_per_epoch'].iloc[0]} steps, "
          f"{by_budget['final_test_loss'].iloc[-1]:.2f} after {3 * by_budget['steps_per_epoch'].iloc[-1]}.")
