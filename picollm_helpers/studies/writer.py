"""The Transformer that writes (notebook 03), the model the sampling lab (notebook 04) opens on.

The run preset's own Transformer trains on the base corpus for the preset's budget
(`run.writer_steps`), with the preset's head, starting from the bigram counts of its text and mixed
with the count models of the same text, as the command line's defaults are (the order and the weight
chosen on validation lines taken out of training). Then it writes: a few continuations of prompts
that suit the corpus (a speaker's name and a line break writes a speech), greedy and sampled at
p = 0.5 and p = 1.0, one per seed.
What it writes is measured: its held-out loss on the standard held-out work (nats per token and
bits per character), with the Transformer alone and the count models beside it, the share of its
words that are words, how much the samples vary, and the share of their 8-word spans copied
verbatim from the bundle's texts. A writer that generalises writes its own sentences; one that
memorised recites.
"""

from __future__ import annotations

import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch

from ..artefacts import history_rows, read_artefact, write_artefact
from ..corpus import VALIDATION_FRACTION, TrainingText, build_corpus, standard_heldout
from ..device import seed_everything
from ..heads import vocab_ids_for
from ..models import build_model, describe_vocabulary, model_device
from ..presets import RunPreset
from ..sampling import Decoding, generate_tokens
from ..resume import resume_point
from ..counts import WithCounts, count_model, fit_count_models, mix_with_counts
from ..training import (TRAINING_CHECKPOINT_SUFFIX, Arithmetic, Budget, Checkpointing, Evaluation, Recipe, TrainingRun,
                        evaluate, save_checkpoint, train_model)
from .lessons import count_baselines
from .text_measures import copied_span_share, distinct_n, reading_words, word_share

WRITER_SETTINGS = {"greedy": None, "p = 0.5": 0.5, "p = 1.0": 1.0}
SAMPLED_SETTINGS = ("p = 0.5", "p = 1.0")  # the settings whose copied spans and words the writer is judged on
PROMPTS = {"plays": ("ROSALIND.\n", "FALSTAFF.\n", "KING HENRY.\n"),
           "tinystories": ("Once upon a time", "One day, a little", "The cat")}
PROMPT_SEED_STRIDE = 1_000
WRITER_SEEDS = range(4)  # each prompt is sampled once per seed, at each setting
CURVE_TOKENS = 8_192  # the held-out slice the training curve is evaluated on; the end uses the whole work
WRITER_RECIPE = Recipe(init="counts")  # the bundle's recipe, starting from counts, as the command line's defaults do


def writing_prompts(base_corpus: str = "plays") -> tuple[str, ...]:
    """Prompts that suit a base corpus: a speaker's name and a line break for the plays."""
    return PROMPTS[base_corpus]


def measure_writing(model, enc, prompts, seeds, max_new_tokens: int, words: set[str]) -> dict:
    """Per setting (greedy, p = 0.5, p = 1.0): one continuation per prompt and seed, the share of their
    words that are words, distinct-2 across them, how many differ, and the share of their 8-word spans
    copied verbatim from data/ (the prompt left out of every measure)."""
    measures = {}
    for setting, top_p in WRITER_SETTINGS.items():
        continuations, samples, tokens = [], [], []
        for index, prompt in enumerate(prompts):
            for seed in seeds:  # each prompt draws with seeds of its own, so that no two share their random numbers
                generation = generate_tokens(model, enc.encode_ordinary(prompt), max_new_tokens,
                                             Decoding(top_p=top_p), seed=seed + PROMPT_SEED_STRIDE * index)
                continuations.append(enc.decode(generation.tokens))
                samples.append(prompt + continuations[-1])
                tokens.append(generation.tokens)
        measures[setting] = {"samples": samples,
                             "word_share": word_share(" ".join(continuations), words),
                             "copied_span_share": copied_span_share(continuations),
                             "distinct_2": distinct_n(torch.tensor(tokens), 2),
                             "distinct_samples": len(set(continuations))}
    return measures


def sampled_summary(writing: dict) -> dict:
    """The writer's headline measures over its sampled continuations (p = 0.5 and p = 1.0)."""
    texts = [sample for setting in SAMPLED_SETTINGS for sample in writing[setting]["samples"]]
    return {"settings": list(SAMPLED_SETTINGS),
            "copied_span_share": float(np.mean([writing[s]["copied_span_share"] for s in SAMPLED_SETTINGS])),
            "word_share": float(np.mean([writing[s]["word_share"] for s in SAMPLED_SETTINGS])),
            "samples": len(texts)}


def train_writer(enc, run: RunPreset, *, device, base_corpus: str = "plays", tinystories_path=None,
                 seed: int = 0, checkpoint_dir: Path | None = None) -> dict:
    """Train the run preset's Transformer on the base corpus for run.writer_steps steps, and measure what it writes.

    Its held-out loss is measured on the standard held-out work (on TinyStories, on a held-out
    twentieth of the stories). Writes artefacts/writer.json and returns it. With checkpoint_dir,
    its training keeps a checkpoint there (writer_<preset>.training.pt, every tenth of the run)
    and goes on from it when an interrupted run left one; the trained model is saved there as
    transformer_writer.pt, the model the sampling lab opens on.
    """
    plays = base_corpus == "plays"
    max_new_tokens, seeds = run.writer_new_tokens, WRITER_SEEDS
    text = TrainingText(base_corpus=base_corpus, tinystories_stories=run.tinystories_stories,
                        tinystories_path=tinystories_path, test_fraction=0.0 if plays else 0.05, seed=seed,
                        validation_fraction=VALIDATION_FRACTION)
    corpus = build_corpus(enc, run.block_size, text)
    started = time.perf_counter()
    count_models = fit_count_models(corpus)
    counting_s = time.perf_counter() - started
    base_corpus = "plays" if corpus.train[0].name == "the plays" else base_corpus  # TinyStories out of reach
    heldout = standard_heldout(enc, run.block_size) if plays else corpus
    prompts = writing_prompts(base_corpus)
    seed_everything(seed)
    transformer = replace(run.transformer, max_seq_len=max(run.block_size, max(map(len, map(enc.encode, prompts)))
                                                           + max_new_tokens))
    model = build_model("transformer", **asdict(transformer),
                        vocab_ids=vocab_ids_for(corpus, run.vocab, run.min_count)).to(device)
    curve = standard_heldout(enc, run.block_size, max_tokens=CURVE_TOKENS) if plays else corpus
    progress = Path(checkpoint_dir) / f"writer_{run.name}{TRAINING_CHECKPOINT_SUFFIX}" if checkpoint_dir else None
    checkpoints = (Checkpointing(path=progress, every=max(1, run.writer_steps // 10),
                                 resume_from=resume_point(progress)) if progress else Checkpointing())
    training = TrainingRun(budget=Budget(max_steps=run.writer_steps), batch_size=run.batch_size, seed=seed,
                           recipe=WRITER_RECIPE, evaluation=Evaluation(every=max(1, run.writer_steps // 5)),
                           checkpointing=checkpoints,
                           arithmetic=Arithmetic(grad_accum_steps=run.grad_accum_steps))
    history = train_model(model, corpus, training, heldout=curve, name="the writer")
    writer = mix_with_counts(model, count_models, corpus.validation)
    final, alone = evaluate(writer, heldout), evaluate(model, heldout)
    counts_alone = evaluate(writer.counts, heldout)
    words, word_list = reading_words()
    writing = measure_writing(writer, enc, prompts, list(seeds), max_new_tokens, words)
    data = ", ".join(stream.name for stream in corpus.train)
    if checkpoint_dir is not None:
        save_checkpoint(model, Path(checkpoint_dir) / "transformer_writer.pt", trained_on=data,
                        steps=run.writer_steps, prompt=prompts[0],
                        counts={"order": writer.counts.order, "weight": writer.weight, "seed": seed,
                                "validation_fraction": VALIDATION_FRACTION, "base_corpus": base_corpus,
                                "tinystories_stories": run.tinystories_stories})
        progress.unlink()  # the run is complete: running the notebook again trains afresh
    config = {"transformer": asdict(transformer), "vocabulary": describe_vocabulary(model), "steps": run.writer_steps,
              "batch_size": run.batch_size, "block_size": run.block_size, "recipe": asdict(WRITER_RECIPE), "data": data,
              "train_tokens": corpus.num_train_tokens, "heldout": [stream.name for stream in heldout.heldout],
              "prompts": list(prompts), "seeds": list(seeds), "max_new_tokens": max_new_tokens, "word_list": word_list,
              "seed": seed}
    results = {"resumed_from_step": history.attrs.get("resumed_from_step"), "heldout_loss": final.nats_per_token,
               "heldout_bits_per_char": final.bits_per_char,
               "heldout_tokens": final.tokens, "train_loss": float(history["loss"].iloc[-1]),
               "transformer_alone": {"heldout_loss": alone.nats_per_token,
                                     "heldout_bits_per_char": alone.bits_per_char},
               "counts": {**writer.choice, "label": writer.counts.label, "seconds": counting_s,
                          "heldout_loss": counts_alone.nats_per_token},
               "counting": count_baselines(corpus, heldout),
               "train_seconds": float(history["elapsed_s"].iloc[-1]),
               "sampled": sampled_summary(writing), "writing": writing, "history": history_rows(history)}
    return read_artefact(write_artefact("writer", preset=run.name, config=config, results=results, device=device))


def with_its_counts(model, enc):
    """A model saved by train_writer, mixed again with the count model it was mixed with: the same training text
    and validation lines counted again, the same order and weight (from its checkpoint's metadata)."""
    counts = model.checkpoint_metadata["counts"]
    text = TrainingText(base_corpus=counts["base_corpus"], tinystories_stories=counts["tinystories_stories"],
                        test_fraction=0.0 if counts["base_corpus"] == "plays" else 0.05, seed=counts["seed"],
                        validation_fraction=counts["validation_fraction"])
    corpus = build_corpus(enc, 2, text)
    return WithCounts(model, count_model(corpus, counts["order"]), counts["weight"])


@torch.no_grad()
def record_attention(model, enc, prompt: str, *, label: str, preset: str, device) -> dict:
    """Every head's attention weights in a Transformer's last block over the prompt's tokens.
    Writes artefacts/attention_map.json and returns it."""
    ids = enc.encode_ordinary(prompt)
    maps = model.attention_maps(torch.tensor(ids, device=model_device(model)))
    config = {"model": label, "prompt": prompt, "block": len(maps)}
    results = {"tokens": [enc.decode([i]) for i in ids], "weights": maps[-1].cpu().tolist()}
    return read_artefact(write_artefact("attention_map", preset=preset, config=config, results=results, device=device))
