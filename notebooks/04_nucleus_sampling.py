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
# long enough to write, mixed with the count model of the same plays as notebook 03 measured it
# (`writer's Transformer alone` is the same network without the counts). If it is missing (this
# notebook run on its own), we train it first, as notebook 03 does.
#
# Beside them, what counting alone writes: `3-gram counts`, an n-gram count model of the plays
# (interpolated Kneser-Ney, fitted in a second or two). It knows every three-token phrase of the
# plays and nothing else: listen to how locally right and globally aimless it is.

# %%
if not (checkpoint_dir / "transformer_writer.pt").is_file():
    print("No writer yet: training the preset's Transformer as notebook 03 does.")
    h.train_writer(enc, run, device=device, seed=SEED, checkpoint_dir=checkpoint_dir)
models = h.load_checkpoints(checkpoint_dir, device)
models["writer's Transformer alone"] = models.pop("writer")
models["writer"] = h.with_its_counts(models["writer's Transformer alone"], enc)
models["3-gram counts"] = h.count_model(h.build_corpus(enc, run.block_size), order=3)
trained = {name: getattr(model, "checkpoint_metadata", {}) for name, model in models.items()}
pd.DataFrame({name: {"family": h.family_of(model), "parameters": h.count_parameters(model),
                     "vocabulary": h.describe_vocabulary(model), "trained on": trained[name].get("trained_on", "the plays"),
                     "steps": trained[name].get("steps", "")}
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
# ### Exercise 10: the nucleus, renormalised
# The notes' plan for true top-p sampling has six steps: softmax, rank, cut at p, renormalise,
# draw, and hand the sampler to `generate_text`. Steps 2 to 4 first: the nucleus of a
# distribution, renormalised. The check holds it against the bundle's `h.nucleus_mask` on the
# edge cases a sampler gets wrong: p = 1.0 keeps every token, a p that the first token already
# exceeds keeps exactly that token, and the token that crosses p is kept.

# %%
import torch


def nucleus_filter(probs, p):
    """The top-p nucleus of each row of probs, renormalised: (..., vocab) -> (..., vocab).

    The nucleus is the smallest set of most probable tokens whose total probability reaches p:
    the token that crosses p is in it, and so is the most probable token, always; p = 1.0 keeps
    every token. The kept probabilities are divided by their sum, the others become 0, and each
    stays at its token's id.
    """
    ### BEGIN SOLUTION
    # HINT: probs.sort(dim=-1, descending=True) gives the ranked values and their ids; keep a token when the
    # mass before it (cumsum - ranked) is below p; scatter back; divide by the sum
    ranked, ids = probs.sort(dim=-1, descending=True)
    kept = ranked * (ranked.cumsum(dim=-1) - ranked < p)
    filtered = torch.zeros_like(probs).scatter(-1, ids, kept)
    return filtered / filtered.sum(dim=-1, keepdim=True)
    ### END SOLUTION


# %% [markdown]
# The check:

# %%
h.check_nucleus_filter(nucleus_filter)

# %% [markdown]
# ### Exercise 11: the draw
# Steps 1 and 5: from logits to one token id, drawn from the renormalised nucleus. The check
# draws thousands of tokens with your sampler and checks that they stay inside the bundle's
# nucleus, in its proportions; it names the notes' placeholder, which returned the most
# probable token whatever p was.

# %%
def nucleus_sample(logits, p, generator=None):
    """One token id (an int) drawn from the top-p nucleus of a 1-D logits vector (vocab,).

    softmax -> nucleus_filter -> one draw in proportion to the kept probabilities, from
    `generator` (a torch.Generator, so that a seed gives the same draws).
    """
    ### BEGIN SOLUTION
    # HINT: torch.multinomial(nucleus_filter(logits.softmax(dim=-1), p), 1, generator=generator), as an int
    return int(torch.multinomial(nucleus_filter(logits.softmax(dim=-1), p), 1, generator=generator))
    ### END SOLUTION


# %% [markdown]
# The check: p = 0.8, p = 1.0, and a p below the most probable token's probability.

# %%
h.check_nucleus_sample(nucleus_sample)

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
plan = h.DiversityPlan(prompt=PROMPT, top_ps=TOP_PS, num_samples=num_samples, seed=SEED)
diversity = h.sampling_diversity(models, enc, plan, preset=run.name, device=device, words=words, word_list=word_list)
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
          f"from {h.as_percent(greedy['word_share'])} to {h.as_percent(full['word_share'])}; "
          f"{full['distinct_samples']} of {num_samples} "
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

# %% [markdown]
# ## Questions you may be asked
# What a presenter may be asked about this notebook, the course notes' interview questions among
# them where they fit. Every number in an answer is read from this run or its artefacts. Click a
# question to see its answer.

# %%
h.sampling_questions(h.read_artefact(next_token), diversity)
