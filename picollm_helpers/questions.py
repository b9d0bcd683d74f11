"""Section 9. Questions you may be asked: three to five for each notebook, answered from its own run.

Each notebook ends with the questions a presenter may be asked about it, the course notes'
interview questions among them where they fit. Every number in an answer is read from the run's
variables or artefacts, never typed; where an artefact lacks a field an answer reads (one made
before or after a study changed), that answer says so and the others stand.

A notebook shows its questions as collapsed sections (HTML <details>): each answer stays hidden
until its question is clicked, in JupyterLab, Colab, VS Code and on GitHub alike, and needs no
kernel to open. One small function per notebook composes them, so that a study's change of
artefact touches only its own function.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from statistics import mean

from .artefacts import read_artefact
from .presets import InputError
from .studies import EVERY_WINDOW, as_percent, flops_words, lesson_line

__all__ = ["Question", "Questions", "sanity_check_questions", "kgram_questions", "transformer_questions",
           "sampling_questions", "own_text_questions", "overfitting_questions", "hyperparameter_questions"]


class Missing(LookupError):
    """A field an answer reads that its artefact does not hold."""


def field(record, *path):
    """record[path[0]][path[1]]..., or Missing naming the path."""
    value = record
    for key in path:
        try:
            value = value[key]
        except (KeyError, IndexError, TypeError):
            raise Missing(".".join(map(str, path))) from None
    return value


@dataclass(frozen=True)
class Question:
    asked: str
    answer: str


def ask(asked: str, compose, source: str) -> Question:
    """A question and its answer, composed now; where the artefact lacks what the answer reads, an answer that
    says so."""
    try:
        return Question(asked, compose())
    except Missing as missing:
        return Question(asked, f"Not measured in this run: {source} has no `{missing}`. Run the notebook again to "
                               "measure it.")
    except (LookupError, TypeError, ValueError, ZeroDivisionError, InputError) as error:
        return Question(asked, f"Not measured in this run: {source} does not hold what this answer reads "
                               f"({type(error).__name__}: {error}).")


class Questions:
    """A notebook's questions, shown with their answers collapsed (click a question to reveal its answer)."""

    def __init__(self, notebook: str, items: list[Question]):
        self.notebook, self.items = notebook, items

    def __iter__(self):
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def _repr_html_(self) -> str:
        sections = "".join(f"<details><summary><b>{html.escape(item.asked)}</b></summary>"
                           f"<p>{html.escape(item.answer)}</p></details>" for item in self.items)
        return f"<div><p><i>Questions you may be asked about notebook {self.notebook}: click one to see its " \
               f"answer.</i></p>{sections}</div>"

    def __repr__(self) -> str:
        asked = "\n".join(f"{number}. {item.asked}" for number, item in enumerate(self.items, start=1))
        return f"Questions you may be asked about notebook {self.notebook} (open them in Jupyter for the answers):\n" \
               f"{asked}"


# ---------------------------------------------------------------- what the answers share


def runs_where(study: dict, **config) -> list[dict]:
    """A study's successful runs whose config has these values (Missing when there is none)."""
    runs = [run for run in field(study, "results", "runs") if run.get("status", "ok") == "ok"
            and all(run["config"].get(key) == value for key, value in config.items())]
    if not runs:
        raise Missing(f"results.runs ({', '.join(f'{key} {value}' for key, value in config.items()) or 'any'})")
    return runs


def mean_of(runs: list[dict], metric: str) -> float:
    """A metric's mean over runs (its seeds), Missing when there is none."""
    values = [run[metric] for run in runs if run.get(metric) is not None]
    if not values:
        raise Missing(f"results.runs[].{metric}")
    return mean(values)


def lessons(study: dict, figure: str | None = None) -> list[dict]:
    """A study's lessons, or those drawn on one of its figures where the artefact says which."""
    every = field(study, "results", "lessons")
    if not every:
        raise Missing("results.lessons")
    chosen = study.get("results", {}).get("lessons_by_figure", {}).get(figure)
    return [every[index] for index in chosen] if chosen else every


def lesson_text(items: list[dict]) -> str:
    return " ".join(f"{lesson_line(item)}." for item in items)


def findings(study: dict) -> str:
    """How many of a study's lessons hold beyond twice their seed-to-seed noise, and which do not."""
    items = lessons(study)
    unresolved = [item["claim"] for item in items if not item["holds"]]
    seeds = sorted({item["seeds"] for item in items})
    held = len(items) - len(unresolved)
    text = (f"{held} of its {len(items)} lessons hold{'s' * (held == 1)}: their effect, measured over "
            f"{' or '.join(map(str, seeds))} seeds, is more than twice its seed-to-seed standard deviation.")
    if unresolved:
        text += " Not resolved at this budget: " + "; ".join(unresolved) + "."
    return text + " A difference inside that noise is not a finding, however the means look."


def lesson_about(study: dict, words: str) -> dict:
    """The lesson whose claim mentions `words`."""
    for item in lessons(study):
        if words in item["claim"]:
            return item
    raise Missing(f"results.lessons (a lesson about {words})")


# ---------------------------------------------------------------- one function per notebook


def sanity_check_questions(sanity: dict) -> Questions:
    """Notebook 01: the course notes' four interview questions on the sanity check, and the first loss."""
    source = "artefacts/sanity_check.json"

    def results(name: str):
        return field(sanity, "results", name)

    def verified() -> str:
        epochs = " -> ".join(f"{loss:.3f}" for loss in results("epoch_losses"))
        return (f"That every stage runs end to end on {field(sanity, 'device')}: GPT-2's tokenizer, the loader of "
                f"padded lines, a forward and backward pass, the optimizer and generation. The first loss was "
                f"{results('initial_loss'):.3f} nats against ln 50,257 = {results('ln_vocab'):.3f}, "
                f"and the three one-step epochs gave {epochs}. {field(sanity, 'config', 'data')} ships with the "
                "repository, so the run needs no download and takes seconds.")

    def incoherent() -> str:
        epochs, longer = results("epoch_losses"), results("longer_run_losses")
        return (f"Three optimizer steps on three numeric lines moved the loss by {epochs[0] - epochs[-1]:.3f} nats; "
                f"even the longer run of {len(longer)} steps ends at {longer[-1]:.3f} nats per token, on a file of "
                "numbers. The run checks that the code works, not what the model writes: notebook 03 trains a "
                "model on the plays long enough to write, and measures what it writes.")

    def first_loss() -> str:
        initial, ln_vocab = results("initial_loss"), results("ln_vocab")
        return (f"A model that spreads its probability evenly over the 50,257 ids pays ln 50,257 = {ln_vocab:.3f} "
                f"nats per token, and a freshly initialised one is close to that: this one measured {initial:.3f}, "
                f"{abs(initial - ln_vocab):.3f} away. A first loss in the hundreds, as the notes once recorded for "
                "fresh Transformers, means a bug: a loss summed instead of averaged, or logits blown up at "
                "initialisation.")

    def threads() -> str:
        sweep = read_artefact("recipe_sweep")
        runs = field(sweep, "results", "runs")
        one, defaults = field(runs, "one thread", "tokens_per_s"), field(runs, "the defaults", "tokens_per_s")
        return (f"This run used {field(sanity, 'device')}. One thread avoided OpenMP's shared-memory errors in a "
                f"sandbox; it costs speed where more cores are free: the recipe sweep (artefacts/recipe_sweep.json) "
                f"trained at {one:,.0f} tokens/s on one thread against {defaults:,.0f} with every thread of "
                f"{field(sweep, 'device')}. Lift the cap wherever shared memory works.")

    return Questions("01", [
        ask("What did you verify in the sanity-check run, and why did you choose the custom dataset?", verified,
            source),
        ask("Why did the generated samples look incoherent, and is that a concern?", incoherent, source),
        ask("Why should a fresh model's loss be about 10.8, and what would a much larger one mean?", first_loss,
            source),
        ask("You pinned OMP_NUM_THREADS to 1. Will that hurt performance later?", threads,
            "artefacts/sanity_check.json or recipe_sweep.json")])


def kgram_questions(comparison: dict, real_text: dict, loop_difference: float | None = None) -> Questions:
    """Notebook 02: which design, how much the vectorised forward pass gains, and which window."""
    source = "artefacts/kgram_comparison.json and artefacts/kgram_real_text.json"

    def designs() -> dict:
        return field(comparison, "results", "designs")

    def held_out() -> dict:
        """The held-out runs with this bundle's window, by design."""
        return {row["variant"]: row for row in field(real_text, "results", "runs").values()
                if "this bundle" in row.get("window", "")}

    def which_design() -> str:
        best = field(real_text, "results", "best_design")
        others = ", ".join(f"{name} {row['final_test_loss']:.3f}" for name, row in held_out().items() if name != best)
        speeds = [field(designs(), name, "tokens_per_s") for name in ("onehot", "embedding", "conv")]
        return (f"On real text, held out: after {field(real_text, 'config', 'steps')} steps on the plays, the {best} "
                f"design reaches {field(held_out(), best, 'final_test_loss'):.3f} nats per token on "
                f"{field(real_text, 'config', 'heldout')} ({others}), one seed each, so small differences are not "
                f"findings. On the notes' three numeric lines the three train at {min(speeds):,.0f} to "
                f"{max(speeds):,.0f} tokens/s.")

    def loop_speed() -> str:
        checked = (f"; the notebook checked that both give the same logits (largest difference "
                   f"{loop_difference:.1e})" if loop_difference is not None else "")
        windows = field(comparison, "results", "windows")
        return (f"The onehot design, vectorised, trains {field(designs(), 'onehot', 'speedup_over_loop'):.0f}x faster "
                f"than the starter's Python loop over positions and batch items "
                f"({field(designs(), 'onehot', 'tokens_per_s'):,.0f} against "
                f"{field(comparison, 'results', 'starter_loop', 'tokens_per_s'):,.0f} tokens/s), with the same "
                f"arithmetic{checked}. Vectorising alone, computing every window as the loop does, gives "
                f"{field(designs(), EVERY_WINDOW, 'speedup_over_loop'):.0f}x; the rest is computing each distinct "
                f"window once, since {windows['distinct']:,} of the batches' {windows['positions']:,} windows are "
                f"distinct on the notes' three repeated lines.")

    def window() -> str:
        starters = next((row for row in field(real_text, "results", "runs").values()
                         if "starter" in row.get("window", "")), None)
        if starters is None:
            raise Missing("results.runs (the starter's window)")
        gap = starters["final_test_loss"] - field(held_out(), starters["variant"], "final_test_loss")
        return (f"The k tokens ending at t, t-k+1 .. t: the logits at t predict token t+1, so the token right before "
                f"it belongs in the window. The starter's t-k .. t-1 leaves it out; on the plays the "
                f"{starters['variant']} design with the starter's window ends {abs(gap):.3f} nats per token "
                f"{'above' if gap > 0 else 'below'} the same design with this bundle's (one seed each).")

    def one_hot() -> str:
        k = field(comparison, "config", "k")
        return (f"The one-hot input has k x 50,257 = {k * 50257:,} entries for k = {k}, almost all zero: a one-hot "
                "row times a weight matrix only picks one row of it, so the bundle computes that layer as a lookup. "
                f"It still holds {field(designs(), 'onehot', 'parameters'):,} parameters against "
                f"{field(designs(), 'embedding', 'parameters'):,} for the embedding design, whose first layer is "
                "shared by the k positions.")

    return Questions("02", [
        ask("Which k-gram design did you choose, and why?", which_design, source),
        ask("How much faster is the vectorised forward pass than the starter's loop, and is it the same "
            "computation?", loop_speed, source),
        ask("Which k tokens does the model read, and what did the starter's window cost?", window, source),
        ask("Why not feed the k one-hot vectors to the MLP, as the starter's docstring says?", one_hot, source)])


def transformer_questions(race: dict, breakdown: dict, writer: dict,
                          cache_difference: float | None = None) -> Questions:
    """Notebook 03: the fastest learner, where a step's time goes, the KV cache, and the writer."""
    source = "artefacts/fastest_learner.json, step_breakdown.json and writer.json"

    def fastest() -> str:
        return lesson_text([item for item in lessons(race) if "KV cache" not in item["claim"]])

    def compute() -> str:
        full, compact = field(breakdown, "results", "breakdowns").values()
        head = full["parts"]["output head"]["share"] + full["parts"]["softmax and loss"]["share"]
        return (f"With the full head, one training step of the preset's Transformer took {full['step_ms']:.0f} ms, "
                f"{head:.0%} of it in the output layer and its softmax over 50,257 ids. A compact head, over the ids "
                f"the plays use plus a bucket, took {compact['step_ms']:.0f} ms "
                f"({full['step_ms'] / compact['step_ms']:.1f}x faster), and its losses are still full-vocabulary "
                "nats.")

    def cache() -> str:
        checked = (f"Generating 30 tokens one at a time through the cache gives the logits of the full forward pass "
                   f"(largest difference {cache_difference:.1e}), and the exercise's check holds a cache to the same "
                   "standard step by step. " if cache_difference is not None else "")
        return checked + lesson_line(lesson_about(race, "KV cache")) + "."

    def memorised() -> str:
        sampled = field(writer, "results", "sampled")
        return (f"A model that memorised would recite. Of the 8-word spans of its {sampled['samples']} sampled "
                f"continuations, {sampled['copied_span_share']:.1%} occur verbatim in any text the bundle ships, while "
                f"{sampled['word_share']:.0%} of their words are English words or words of the plays. Its held-out "
                f"loss on {', '.join(field(writer, 'config', 'heldout'))}, a play it never read, is "
                f"{field(writer, 'results', 'heldout_loss'):.2f} nats per token.")

    return Questions("03", [
        ask("Which model learns fastest on a laptop?", fastest, source),
        ask("Where does the time of a training step go, and what did you do about it?", compute, source),
        ask("How do you know your KV cache is right, and what does it buy?", cache, source),
        ask("Your Transformer writes speeches: has it just memorised the plays?", memorised, source)])


def sampling_row(diversity: dict, model: str, top_p: float | None) -> dict:
    """One model's row of the sampling comparison at one p (None: greedy)."""
    for row in field(diversity, "results", "rows"):
        if row["model"] == model and row["top_p"] == top_p:
            return row
    raise Missing(f"results.rows ({model} at {'greedy' if top_p is None else f'p = {top_p}'})")


def writer_rows(diversity: dict) -> tuple[dict, dict]:
    """The writer's greedy row and its p = 1.0 row of the sampling comparison."""
    return sampling_row(diversity, "writer", None), sampling_row(diversity, "writer", 1.0)


def sampling_questions(next_token: dict, diversity: dict) -> Questions:
    """Notebook 04: true top-p, what p trades, its edge cases, and the notes' takeaway."""
    source = "artefacts/next_token.json and artefacts/sampling_diversity.json"

    def true_top_p() -> str:
        results = field(next_token, "results")
        greedy, full = writer_rows(diversity)
        samples = len(full["samples"])
        return (f"The notes' sampler returned the most probable token whatever p was. This one keeps the smallest "
                f"set of tokens whose probability reaches p: after the prompt, at p = {results['p']}, the writer's "
                f"nucleus holds {results['nucleus_size']:,} of {results['vocab_size']:,} tokens "
                f"({results['nucleus_mass']:.1%} of the probability). At p = 1.0, {full['distinct_samples']} of its "
                f"{samples} samples differ; greedy decoding gives {greedy['distinct_samples']} distinct text(s) "
                "from as many seeds. The exercises above hold a sampler to the bundle's h.nucleus_mask on the edge "
                "cases.")

    def trade() -> str:
        greedy, full = writer_rows(diversity)
        return (f"Variety against likelihood. From greedy to p = 1.0 the writer's distinct-2 (unique bigrams) goes "
                f"from {greedy['distinct_2']:.2f} to {full['distinct_2']:.2f}, and the mean log-probability it "
                f"gives its own tokens from {greedy['mean_logprob']:.2f} to {full['mean_logprob']:.2f} nats: more "
                "varied text, each token less likely.")

    def edges() -> str:
        results = field(next_token, "results")
        _, full = writer_rows(diversity)
        top, token = field(results, "probs", 0), field(results, "tokens", 0)
        return (f"p = 1.0 cuts nothing: the writer's nucleus then holds {full['mean_nucleus_size']:,.0f} tokens on "
                f"average, every token it gives a probability. A p below the most probable token's probability "
                f"keeps that token alone: after the prompt the writer's top token, {token!r}, has probability "
                f"{top:.2f}, so any p below it is greedy there. The token that crosses p is always kept.")

    def noisier() -> str:
        models = dict.fromkeys(row["model"] for row in field(diversity, "results", "rows"))
        ends = {model: (sampling_row(diversity, model, None), sampling_row(diversity, model, 1.0)) for model in models}
        varied = sum(full["distinct_2"] > greedy["distinct_2"] for greedy, full in ends.values())
        words = "; ".join(f"{model} {as_percent(greedy['word_share'])} -> {as_percent(full['word_share'])}"
                          for model, (greedy, full) in ends.items())
        return (f"More diverse: distinct-2 rises from greedy to p = 1.0 for {varied} of {len(ends)} models. Noisier "
                f"where the share of the samples' words that are words falls, from greedy to p = 1.0: {words}.")

    return Questions("04", [
        ask("The notes' sampler gave the same text for every p. How do you know this one is true top-p?",
            true_top_p, source),
        ask("What does p trade off?", trade, source),
        ask("What do p = 1.0 and a p below the top token's probability do?", edges, source),
        ask("The notes say higher p gives more diverse but noisier text. Does the measurement agree?", noisier,
            source)])


def own_text_questions(study: dict) -> Questions:
    """Notebook 05: how much text, blending, what counts as a finding, and the notes' sweep."""
    source = "artefacts/own_text.json"

    def how_much() -> str:
        return lesson_text(lessons(study, "own_text_data"))

    def blend() -> str:
        best = field(study, "results", "best_blend")
        return (f"On your own held-out lines the best share of your text was {best:.0%}. "
                + lesson_text(lessons(study, "own_text_blend")))

    def notes_sweep() -> str:
        smallest = min(run["config"]["tokens"] for run in runs_where(study, question="data"))
        runs = runs_where(study, question="data", tokens=smallest)
        return (f"The notes' sweep measured training loss, which a model can drive down by learning a small text by "
                f"heart. Here, trained on {smallest:,} tokens, the model's training loss ends at "
                f"{mean_of(runs, 'train_loss'):.2f} nats per token while its loss on a play it never read is "
                f"{mean_of(runs, 'standard_loss'):.2f}: only held-out loss says how well it learned the language.")

    return Questions("05", [
        ask("How much text does a model need?", how_much, source),
        ask("Should you blend your own text with the plays?", blend, source),
        ask("Which of these differences are findings?", lambda: findings(study), source),
        ask("The notes' sweep showed loss getting worse with more data. Why does this notebook disagree?",
            notes_sweep, source)])


def overfitting_questions(study: dict) -> Questions:
    """Notebook 06: the turning point, the remedies, learning by heart, and what counts as a finding."""
    source = "artefacts/overfitting.json"

    def turning_point() -> str:
        plain = runs_where(study, remedy="none")
        return (f"On average at step {mean_of(plain, 'turning_step'):.0f} of "
                f"{field(study, 'config', 'budget', 'steps')}: there the plain run's held-out loss is lowest, "
                f"{mean_of(plain, 'lowest_loss'):.3f} nats per token, and it ends at "
                f"{mean_of(plain, 'final_loss'):.3f}. Early stopping keeps the model of the turning point.")

    def remedies() -> str:
        names = dict.fromkeys(run["config"]["remedy"] for run in runs_where(study))
        finals = sorted((mean_of(runs_where(study, remedy=name), "final_loss"), name) for name in names)
        return ("Final held-out loss, mean over the seeds, best first: "
                + ", ".join(f"{name} {loss:.3f}" for loss, name in finals) + ". " + findings(study))

    def by_heart() -> str:
        plain = runs_where(study, remedy="none")
        train, held_out = mean_of(plain, "final_train_loss"), mean_of(plain, "final_loss")
        return (f"Its training loss ends at {train:.2f} nats per token on {field(study, 'config', 'slice')}, "
                f"{held_out - train:.2f} below its {held_out:.2f} on {field(study, 'config', 'heldout')}, which it "
                "never saw: the larger that gap, the more it predicts its own text rather than the language.")

    return Questions("06", [
        ask("Where is the turning point, and what does early stopping keep?", turning_point, source),
        ask("Which remedy works best?", remedies, source),
        ask("How do you know the model learned its text by heart?", by_heart, source)])


def hyperparameter_questions(study: dict, rates: dict | None = None) -> Questions:
    """Notebook 07: the best width for a budget, the learning rate, bigger against faster, findings, and tokens
    against seconds."""
    source = "artefacts/hyperparameters.json"

    def best_width() -> str:
        best = field(study, "results", "best_widths")
        crossing = field(study, "results", "crossing_flops")
        where = (f"; the widths cross near {flops_words(crossing)}" if crossing else
                 "; in these budgets the best width does not change")
        return ("The best width at each budget of training compute: "
                + ", ".join(f"{flops_words(float(flops))}: width {width}" for flops, width in best.items()) + where
                + ". " + lesson_text([item for item in field(study, "results", "lessons") if "width" in item["claim"]]))

    def learning_rate() -> str:
        chosen = field(study, "config", "learning_rates")
        tokens = field(study, "config", "budget", "tuning_tokens")
        answer = (f"Each width trains at the rate that did best for it on {tokens:,} training tokens, in a grid that "
                  "halves with every doubling of width: " + ", ".join(f"width {width}: {rate:g}"
                                                                      for width, rate in chosen.items()) + ".")
        warnings = field(study, "config", "rate_warnings")
        answer += (" Every chosen rate lies inside its grid." if not warnings else " " + "; ".join(warnings) + ".")
        return answer + (" " + lesson_text(field(rates, "results", "lessons")) if rates else "")

    def bigger() -> str:
        largest = max(float(flops) for flops in field(study, "results", "best_widths"))
        at_largest = {run["config"]["width"]: runs_where(study, width=run["config"]["width"], flops=largest)
                      for run in runs_where(study, flops=largest)}
        losses = ", ".join(f"width {width}: {mean_of(runs, 'loss'):.3f} after {runs[0]['config']['tokens']:,} tokens"
                           for width, runs in sorted(at_largest.items()))
        speeds = ", ".join(f"{mean_of(runs, 'tokens_per_s'):,.0f}" for _, runs in sorted(at_largest.items()))
        return (f"It depends on the budget. A wider model learns more from each token but costs more compute per "
                f"token, and trains fewer tokens per second ({speeds} tokens per second, from the narrowest to the "
                f"widest). With {flops_words(largest)} of training the held-out loss is {losses}.")

    def compute_not_seconds() -> str:
        seconds = [run["seconds"] for run in runs_where(study)]
        return (f"A budget in FLOPs is the same on every machine; one in seconds is not (these runs took from "
                f"{min(seconds):.0f} to {max(seconds):.0f} s on {field(study, 'device')}, and a faster laptop "
                "would move every point). A budget in tokens would not ask the question at all: at equal tokens a "
                "wider model learns more from each, but each costs it more compute. The seconds are recorded beside "
                "the FLOPs, and the speed figure plots the same runs against them.")

    return Questions("07", [
        ask("Which width is best for a student's budget?", best_width, source),
        ask("Which learning rate did each width train at, and how was it chosen?", learning_rate, source),
        ask("Is a bigger model better?", bigger, source),
        ask("Which of these differences are findings?", lambda: findings(study), source),
        ask("Why count the budget in FLOPs rather than seconds or tokens?", compute_not_seconds, source)])
