"""Notebook 05's study: training on your own text, and how much text it takes.

Two questions, on the run preset's study Transformer (presets.study_transformer), each point with
several seeds:

  how much data    the first N tokens of the base corpus (sizes spanning 64x), each trained for
                   the same number of steps, held-out loss on the standard held-out work. Too
                   little text is seen again and again, and learned by heart.
  blending         your text (the custom corpus) mixed with the base corpus, your text's share
                   of the training windows from 0 (the base corpus alone) to 1 (your text
                   alone), held-out loss on held-out lines of your text and on the standard
                   held-out work, and a sample from the same prompt at every share. The course
                   notes planned this comparison ("base-only and blended corpora").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..artefacts import history_rows
from ..corpus import PackedCorpus, TokenStream, build_corpus, standard_heldout
from ..device import seed_everything
from ..heads import vocab_ids_for
from ..models import build_model, describe_head
from ..presets import CUSTOM_CORPUS, RunPreset, study_transformer
from ..sampling import generate_text
from ..training import Recipe, evaluate, train_model
from .lessons import lesson, paired_effects, per_seed, run_study, runs_by, spread, study_seeds


@dataclass(frozen=True)
class OwnTextBudget:
    """The sizes, shares and steps of notebook 05's study on one run preset."""

    sizes: tuple[int, ...]  # training tokens of the base corpus, for "how much data"
    shares: tuple[float, ...]  # your text's share of the training windows, for "blending"
    steps: int  # optimizer steps of every run
    eval_tokens: int | None  # the slice of the standard held-out work (None: all of it)


OWN_TEXT_BUDGETS = {
    "quick": OwnTextBudget(sizes=(2_048, 32_768), shares=(0.0, 0.5, 1.0), steps=6, eval_tokens=1_024),
    "cpu": OwnTextBudget(sizes=(4_096, 32_768, 262_144), shares=(0.0, 0.25, 0.5, 0.75, 1.0), steps=200,
                         eval_tokens=8_192),
    "gpu": OwnTextBudget(sizes=(8_192, 65_536, 524_288), shares=(0.0, 0.25, 0.5, 0.75, 1.0), steps=1_000,
                         eval_tokens=None),
}
HELD_OUT_LINES = 0.2  # of your text's lines, a seeded choice held out


def base_slice(base: PackedCorpus, tokens: int) -> PackedCorpus:
    """The first `tokens` tokens of the base corpus, as a corpus of its own."""
    stream = base.train[0]
    return PackedCorpus([TokenStream(f"{stream.name}, first {tokens:,} tokens", stream.ids[:tokens])], [1.0], [],
                        base.block_size)


def blend(base: PackedCorpus, own: PackedCorpus, share: float) -> PackedCorpus:
    """The base corpus and your text's training lines, your text drawn for `share` of the windows."""
    streams = [(base.train[0], 1.0 - share), (own.train[0], share)]
    kept = [(stream, weight) for stream, weight in streams if weight > 0]
    return PackedCorpus([stream for stream, _ in kept], [weight for _, weight in kept], [], base.block_size)


def own_text_study(enc, run: RunPreset, *, device, input_dir: str = CUSTOM_CORPUS, prompt: str = "The harbor",
                   seeds=None, checkpoint_dir=None) -> dict:
    """Both questions, every point with every seed; write artefacts/own_text.json (with its lessons)."""
    budget = OWN_TEXT_BUDGETS[run.name]
    seeds = list(seeds or study_seeds(run))
    base = build_corpus(enc, run.block_size)
    your_lines = build_corpus(enc, run.block_size, base_weight=0.0, input_dir=input_dir, test_fraction=HELD_OUT_LINES)
    standard = standard_heldout(enc, run.block_size, budget.eval_tokens)
    vocab_ids = vocab_ids_for(blend(base, your_lines, 0.5), run.vocab, run.min_count)

    def train(config: dict) -> dict:
        corpus = (base_slice(base, config["tokens"]) if config["question"] == "data"
                  else blend(base, your_lines, config["share"]))
        seed_everything(config["seed"])
        model = build_model("transformer", **asdict(study_transformer(run)), vocab_ids=vocab_ids).to(device)
        history = train_model(model, corpus, max_steps=budget.steps, batch_size=run.batch_size, seed=config["seed"],
                              grad_accum_steps=run.grad_accum_steps, eval_every=max(1, budget.steps // 4),
                              heldout=standard, name=str(config))
        result = {"train_loss": float(history["loss"].tail(max(1, budget.steps // 10)).mean()),
                  "standard_loss": float(history["test_loss"].iloc[-1]), "history": history_rows(history)}
        if config["question"] == "blend":
            your = evaluate(model, your_lines)
            result.update(your_loss=your.nats_per_token, your_bpc=your.bits_per_char,
                          sample=generate_text(model, enc, prompt, max_new_tokens=30, top_p=0.8, seed=config["seed"]))
        return result

    configs = ([{"question": "data", "tokens": tokens, "seed": seed} for tokens in budget.sizes for seed in seeds]
               + [{"question": "blend", "share": share, "seed": seed} for share in budget.shares for seed in seeds])
    study_config = {"budget": asdict(budget), "seeds": seeds, "transformer": asdict(study_transformer(run)),
                    "block_size": run.block_size, "batch_size": run.batch_size, "recipe": asdict(Recipe()),
                    "vocabulary": describe_head(vocab_ids),
                    "base": "the plays", "your_text": input_dir, "held_out_lines": HELD_OUT_LINES,
                    "your_heldout_tokens": your_lines.num_heldout_tokens, "standard_heldout": standard.heldout[0].name,
                    "standard_heldout_tokens": standard.num_heldout_tokens, "prompt": prompt}
    return run_study("own_text", configs, train, preset=run.name, device=device, study_config=study_config,
                     summarize=own_text_lessons, checkpoint_dir=checkpoint_dir)


def own_text_lessons(runs: list[dict]) -> dict:
    """More data against less; blending against your text alone, on your text; what your text alone costs."""
    sizes = {tokens: group for (question, tokens), group in runs_by(runs, "question", "tokens").items()
             if question == "data"}
    shares = {share: group for (question, share), group in runs_by(runs, "question", "share").items()
              if question == "blend"}
    smallest, largest = min(sizes), max(sizes)
    standard = lambda run: run["standard_loss"]  # noqa: E731
    your = lambda run: run["your_loss"]  # noqa: E731
    blended = [share for share in shares if 0 < share < 1]
    best_blend = min(blended, key=lambda share: spread([your(run) for run in shares[share]])[0])
    lessons = [
        lesson(f"{largest // smallest}x more training text ({largest:,} tokens instead of {smallest:,}) lowers the "
               "held-out loss at the same number of steps, in nats per token",
               paired_effects(per_seed(sizes[largest], standard), per_seed(sizes[smallest], standard))),
        lesson(f"With only {smallest:,} tokens the model learns its text by heart: its training loss ends below its "
               "held-out loss, in nats per token",
               paired_effects(per_seed(sizes[smallest], lambda run: run["train_loss"]),
                              per_seed(sizes[smallest], standard))),
        lesson(f"Blending beats training on your text alone, on your own held-out lines: {best_blend:.0%} your text "
               "against 100%, in nats per token",
               paired_effects(per_seed(shares[best_blend], your), per_seed(shares[1.0], your))),
        lesson("Training on your text alone costs the base corpus: held-out loss on the standard work rises from "
               "0% to 100% your text, in nats per token",
               paired_effects(per_seed(shares[0.0], standard), per_seed(shares[1.0], standard))),
    ]
    return {"lessons": lessons, "lessons_by_figure": {"own_text_data": [0, 1], "own_text_blend": [2, 3]},
            "best_blend": best_blend}
