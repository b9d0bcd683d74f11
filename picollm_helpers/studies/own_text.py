"""Notebook 05's study: training on your own text, how much text it takes, and what learning adds to counting.

Two questions, on the run preset's study Transformer (presets.study_transformer), each point with
several seeds, beside the count models fitted on exactly the text each point trains on:

  how much data    the first N tokens of the base corpus (sizes spanning 64x), each trained for
                   the same number of steps, held-out loss on the standard held-out work, at the
                   end and at the run's best evaluation (where early stopping would keep it). Too
                   little text is seen again and again, and learned by heart; counting, fitted on
                   the same few tokens, is the yardstick of what learning adds.
  blending         your text (the custom corpus) mixed with the base corpus, your text's share
                   of the training windows from 0 (the base corpus alone) to 1 (your text
                   alone), held-out loss on held-out lines of your text and on the standard
                   held-out work, and a sample from the same prompt at every share. The course
                   notes planned this comparison ("base-only and blended corpora").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..artefacts import history_rows
from ..corpus import PackedCorpus, TokenStream, TrainingText, build_corpus, standard_heldout
from ..device import seed_everything
from ..drawing import SPREAD, errorbars, plot_count_curve, slide_figure, study_title, subplots
from ..heads import vocab_ids_for
from ..models import build_model, describe_head
from ..presets import CUSTOM_CORPUS, RunPreset, study_transformer
from ..sampling import Decoding, generate_text
from ..training import Arithmetic, Budget, Evaluation, Recipe, TrainingRun, evaluate, how_it_trained, train_model
from .lessons import Study, count_baselines, lesson, paired_effects, per_seed, run_study, runs_by, spread, study_seeds


@dataclass(frozen=True)
class OwnTextBudget:
    """The sizes, shares and steps of notebook 05's study on one run preset."""

    sizes: tuple[int, ...]  # training tokens of the base corpus, for "how much data"
    shares: tuple[float, ...]  # your text's share of the training windows, for "blending"
    steps: int  # optimizer steps of every run
    eval_every: int  # steps between held-out evaluations
    eval_tokens: int | None  # the slice of the standard held-out work (None: all of it)


OWN_TEXT_BUDGETS = {
    "quick": OwnTextBudget(sizes=(2_048, 32_768), shares=(0.0, 0.5, 1.0), steps=6, eval_every=2, eval_tokens=1_024),
    "cpu": OwnTextBudget(sizes=(4_096, 32_768, 262_144), shares=(0.0, 0.25, 0.5, 0.75, 1.0), steps=600,
                         eval_every=50, eval_tokens=8_192),
    "gpu": OwnTextBudget(sizes=(8_192, 65_536, 524_288), shares=(0.0, 0.25, 0.5, 0.75, 1.0), steps=2_000,
                         eval_every=100, eval_tokens=None),
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
    study = own_text_plan(enc, run, device=device, input_dir=input_dir, prompt=prompt, seeds=seeds)
    return run_study(study, preset=run.name, device=device, checkpoint_dir=checkpoint_dir)


def own_text_plan(enc, run: RunPreset, *, device, input_dir: str = CUSTOM_CORPUS, prompt: str = "The harbor",
                  seeds=None) -> Study:
    """The study's runs (every size and every share, with every seed), the function that trains one, its settings
    and lessons."""
    budget = OWN_TEXT_BUDGETS[run.name]
    seeds = list(seeds or study_seeds(run))
    base = build_corpus(enc, run.block_size)
    your_lines = build_corpus(enc, run.block_size,
                              TrainingText(base_weight=0.0, input_dir=input_dir, test_fraction=HELD_OUT_LINES))
    standard = standard_heldout(enc, run.block_size, budget.eval_tokens)
    vocab_ids = vocab_ids_for(blend(base, your_lines, 0.5), run.vocab, run.min_count)

    def corpus_of(config: dict) -> PackedCorpus:
        return (base_slice(base, config["tokens"]) if config["question"] == "data"
                else blend(base, your_lines, config["share"]))

    def train(config: dict) -> dict:
        seed_everything(config["seed"])
        model = build_model("transformer", **asdict(study_transformer(run)), vocab_ids=vocab_ids).to(device)
        your_curve = []  # a blend's loss on your held-out lines at each evaluation, to early-stop it there too
        on_eval = ((lambda step, model: your_curve.append(evaluate(model, your_lines).nats_per_token))
                   if config["question"] == "blend" else None)
        training = TrainingRun(budget=Budget(max_steps=budget.steps), batch_size=run.batch_size, seed=config["seed"],
                               evaluation=Evaluation(every=budget.eval_every),
                               arithmetic=Arithmetic(grad_accum_steps=run.grad_accum_steps))
        history = train_model(model, corpus_of(config), training, heldout=standard, name=str(config),
                              on_eval=on_eval)
        evaluated = history.dropna(subset=["test_loss"])
        result = {"train_loss": float(history["loss"].tail(max(1, budget.steps // 10)).mean()),
                  "standard_loss": float(evaluated["test_loss"].iloc[-1]),
                  "best_standard_loss": float(evaluated["test_loss"].min()),
                  "best_step": int(evaluated.loc[evaluated["test_loss"].idxmin(), "step"]),
                  "history": history_rows(history), **how_it_trained(history)}
        if config["question"] == "blend":
            your = evaluate(model, your_lines)
            result.update(your_loss=your.nats_per_token, your_bpc=your.bits_per_char, best_your_loss=min(your_curve),
                          sample=generate_text(model, enc, prompt, 30, Decoding(top_p=0.8), seed=config["seed"]))
        return result

    configs = ([{"question": "data", "tokens": tokens, "seed": seed} for tokens in budget.sizes for seed in seeds]
               + [{"question": "blend", "share": share, "seed": seed} for share in budget.shares for seed in seeds])
    study_config = {"budget": asdict(budget), "seeds": seeds, "transformer": asdict(study_transformer(run)),
                    "block_size": run.block_size, "batch_size": run.batch_size, "recipe": asdict(Recipe()),
                    "vocabulary": describe_head(vocab_ids),
                    "base": "the plays", "your_text": input_dir, "held_out_lines": HELD_OUT_LINES,
                    "your_heldout_tokens": your_lines.num_heldout_tokens, "standard_heldout": standard.heldout[0].name,
                    "standard_heldout_tokens": standard.num_heldout_tokens, "prompt": prompt}
    return Study("own_text", configs, train, study_config, summarize=lambda runs: own_text_summary(
        runs, own_text_counting(base, your_lines, standard, budget)))


def own_text_summary(runs: list[dict], counting: dict) -> dict:
    return {**own_text_lessons(runs, counting), "counting": counting}


def own_text_counting(base: PackedCorpus, your_lines: PackedCorpus, standard, budget: OwnTextBudget) -> dict:
    """The count models of every point's training text: each slice of the base corpus on the standard work, and
    the base corpus, your text and both together on the standard work and on your held-out lines."""
    texts = {"plays": base.train_streams(), "your text": your_lines.train_streams(),
             "both": base.train_streams() + your_lines.train_streams()}
    return {"sizes": {str(tokens): count_baselines(base_slice(base, tokens), standard) for tokens in budget.sizes},
            "standard": {name: count_baselines(streams, standard) for name, streams in texts.items()},
            "your_lines": {name: count_baselines(streams, your_lines) for name, streams in texts.items()}}


def blend_text(share: float) -> str:
    """Which count models' text a blend trains on."""
    return "plays" if share == 0 else "your text" if share == 1 else "both"


def learning_beats_counting(tokens: int, runs: list[dict], counts: dict, best) -> dict:
    """What learning adds on a slice: the Transformer at its best evaluation against the best count model fitted on
    the same tokens."""
    return lesson(f"On {'only ' if tokens < 10_000 else ''}{tokens:,} tokens, learning beats counting: the Transformer "
                  f"at its best evaluation ends below the best count model fitted on the same tokens "
                  f"({counts['best']:.2f}), in nats per token", [counts["best"] - best(run) for run in runs],
                  [spread([best(run) for run in runs])[0]], counts)


def alone_words(runs: list[dict], your, counts: dict) -> str:
    """What the blending claim adds when your text alone is too little to get past counting it: the comparison is
    with a model that has not learnt more than which word follows which."""
    if spread([your(run) for run in runs])[0] < counts["bigram"]:
        return ""
    return (f" (trained on your {counts['train_tokens']:,} tokens alone, the model is not past counting them: "
            f"the bigram counts score {counts['bigram']:.2f} on your lines)")


def own_text_lessons(runs: list[dict], counting: dict) -> dict:
    """More data against less; learning against counting on every slice; learning by heart; blending against your
    text alone, on your text, and what it costs on the standard work."""
    sizes = {tokens: group for (question, tokens), group in runs_by(runs, "question", "tokens").items()
             if question == "data"}
    shares = {share: group for (question, share), group in runs_by(runs, "question", "share").items()
              if question == "blend"}
    smallest, largest = min(sizes), max(sizes)
    best = lambda run: run["best_standard_loss"]  # noqa: E731
    end = lambda run: run["standard_loss"]  # noqa: E731
    your = lambda run: run["best_your_loss"]  # noqa: E731
    mean = lambda group, metric: spread([metric(run) for run in group])[0]  # noqa: E731
    small_counts = counting["sizes"][str(smallest)]
    blended = [share for share in shares if 0 < share < 1]
    best_blend = min(blended, key=lambda share: mean(shares[share], your))
    lessons = [
        lesson(f"{largest // smallest}x more training text ({largest:,} tokens instead of {smallest:,}) lowers the "
               "held-out loss, each run at its best evaluation, in nats per token",
               paired_effects(per_seed(sizes[largest], best), per_seed(sizes[smallest], best)),
               [mean(sizes[smallest], best), mean(sizes[largest], best)],
               [counting["sizes"][str(smallest)], counting["sizes"][str(largest)]]),
        *[learning_beats_counting(tokens, sizes[tokens], counting["sizes"][str(tokens)], best)
          for tokens in sorted(sizes)],
        lesson(f"With only {smallest:,} tokens the model learns its text by heart: trained on past its best "
               "evaluation, its training loss ends below its held-out loss, in nats per token",
               paired_effects(per_seed(sizes[smallest], lambda run: run["train_loss"]),
                              per_seed(sizes[smallest], end)), [mean(sizes[smallest], best)], small_counts),
        lesson(f"Blending beats training on your text alone, on your own held-out lines: {best_blend:.0%} your text "
               f"against 100%, each run at its best evaluation, in nats per token"
               f"{alone_words(shares[1.0], your, counting['your_lines']['your text'])}",
               paired_effects(per_seed(shares[best_blend], your), per_seed(shares[1.0], your)),
               [mean(shares[best_blend], your), mean(shares[1.0], your)],
               [counting["your_lines"][blend_text(best_blend)], counting["your_lines"]["your text"]]),
        lesson(f"Blending costs the base corpus: held-out loss on the standard work rises from 0% to {best_blend:.0%} "
               "your text, in nats per token",
               paired_effects(per_seed(shares[0.0], end), per_seed(shares[best_blend], end)),
               [mean(shares[0.0], end), mean(shares[best_blend], end)],
               [counting["standard"]["plays"], counting["standard"][blend_text(best_blend)]]),
    ]
    data_lessons = range(len(lessons) - 2)
    return {"lessons": lessons, "lessons_by_figure": {"own_text_data": list(data_lessons),
                                                      "own_text_blend": [len(lessons) - 2, len(lessons) - 1]},
            "best_blend": best_blend}


# ---------------------------------------------------------------- the figures


@slide_figure
def plot_own_text_data(artefact: dict):
    """Held-out and training loss against training tokens, from own_text.json."""
    sizes = {tokens: group for (question, tokens), group in runs_by(artefact["results"]["runs"], "question",
                                                                     "tokens").items() if question == "data"}
    tokens = sorted(sizes)
    fig, ax = subplots()
    errorbars(ax, tokens, [sizes[t] for t in tokens], lambda run: run["best_standard_loss"],
              label=f"held out ({artefact['config']['standard_heldout']}), at its best")
    errorbars(ax, tokens, [sizes[t] for t in tokens], lambda run: run["standard_loss"], label="held out, at the end",
              linestyle=":")
    errorbars(ax, tokens, [sizes[t] for t in tokens], lambda run: run["train_loss"], label="training", linestyle="--")
    counting = artefact["results"].get("counting")
    if counting:
        countings = [counting["sizes"][str(t)] for t in tokens]
        plot_count_curve(ax, tokens, countings, "unigram", "unigram counts of the same text", "unigram")
        plot_count_curve(ax, tokens, countings, "best", "best count model of the same text", "best")
    ax.set(xscale="log", xlabel="training tokens (the first N of the plays; log scale)", ylabel="loss (nats / token)",
           title=study_title(artefact, f"How much text: {artefact['config']['budget']['steps']} steps at every size"))
    fig.legend(*ax.get_legend_handles_labels(), loc="outside right center", title=SPREAD.split(":")[0])
    return fig


@slide_figure
def plot_own_text_blend(artefact: dict):
    """Your text's held-out loss and the standard work's against your text's share of training, and the
    trade-off between the two, from own_text.json."""
    shares = {share: group for (question, share), group in runs_by(artefact["results"]["runs"], "question",
                                                                    "share").items() if question == "blend"}
    order = sorted(shares)
    fig, (by_share, tradeoff) = subplots(1, 2)
    config = artefact["config"]
    errorbars(by_share, [100 * s for s in order], [shares[s] for s in order], lambda run: run["best_your_loss"],
              label="your held-out lines, at the best evaluation")
    errorbars(by_share, [100 * s for s in order], [shares[s] for s in order], lambda run: run["standard_loss"],
              label=config["standard_heldout"])
    counting = artefact["results"].get("counting")
    if counting:
        texts = ["plays" if s == 0 else "your text" if s == 1 else "both" for s in order]
        for held_out, name in (("your_lines", "your lines"), ("standard", config["standard_heldout"])):
            countings = [counting[held_out][text] for text in texts]
            plot_count_curve(by_share, [100 * s for s in order], countings, "best", f"counts, {name}", "best")
            plot_count_curve(by_share, [100 * s for s in order], countings, "unigram", f"unigram counts, {name}",
                             "unigram")
    by_share.set(xlabel="your text's share of training (%)", ylabel="held-out loss (nats / token)")
    by_share.legend(title=SPREAD)
    your = [np.mean([run["best_your_loss"] for run in shares[s]]) for s in order]
    standard = [np.mean([run["standard_loss"] for run in shares[s]]) for s in order]
    tradeoff.plot(standard, your, "o-")
    for share, x, y in zip(order, standard, your):
        tradeoff.annotate(f"{share:.0%}", (x, y), textcoords="offset points", xytext=(8, 4))
    tradeoff.set(xlabel=f"loss on {config['standard_heldout']}", ylabel="loss on your lines (best)",
                 title="the trade-off (your share beside each point)")
    fig.suptitle(study_title(artefact, f"Blending your text ({config['your_text']}) with the plays"))
    return fig
