"""Notebook 04's study: what top-p does to the text, measured on every saved model.

Per model and setting (greedy, then p = 0.5 ... 1.0): distinct-1 and distinct-2 of several
samples, the mean log-probability the model gave its own samples, the mean nucleus size, and
the share of the samples' words that are words.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch

from ..artefacts import read_artefact, write_artefact
from ..drawing import pyplot, slide_figure, subplots
from ..models import count_parameters, family_of, model_device
from ..sampling import Decoding, generate_tokens, nucleus_mask
from .text_measures import distinct_n, word_share


def sampling_setting_name(top_p: float | None) -> str:
    return "greedy" if top_p is None else f"p = {top_p:g}"


@torch.no_grad()
def nucleus_sizes_along(model, prompt_ids: list[int], continuations: torch.Tensor, p: float,
                        temperature: float = 1.0) -> torch.Tensor:
    """How many tokens the top-p nucleus held at each step of each continuation (num_samples, length).

    One forward pass over prompt + continuations gives the distribution every new token was drawn from.
    """
    device = model_device(model)
    prompt = torch.tensor(prompt_ids, dtype=torch.long, device=device).view(-1, 1).expand(-1, len(continuations))
    log_probs = model.log_probs(torch.cat([prompt, continuations.T.to(device)]))[len(prompt_ids) - 1:-1]
    return nucleus_mask((log_probs / temperature).softmax(dim=-1), p).sum(dim=-1).T.cpu()


def measure_sampling_setting(model, enc, prompt: str, top_p: float | None, seeds: list[int], max_new_tokens: int,
                             temperature: float, words: set[str]) -> dict:
    """Draw one sample per seed and measure how varied, how likely and how wordlike the samples are."""
    prompt_ids = enc.encode_ordinary(prompt)
    decoding = Decoding(top_p=top_p, temperature=temperature)
    generations = [generate_tokens(model, prompt_ids, max_new_tokens, decoding, seed=seed) for seed in seeds]
    tokens = torch.tensor([generation.tokens for generation in generations])
    logprobs = torch.tensor([generation.logprobs for generation in generations])
    # Greedy decoding draws from a nucleus of one token: the argmax.
    sizes = torch.ones_like(tokens) if top_p is None else nucleus_sizes_along(model, prompt_ids, tokens, top_p,
                                                                              temperature)
    continuations = [enc.decode(sample) for sample in tokens.tolist()]
    return {"setting": sampling_setting_name(top_p), "top_p": top_p, "distinct_1": distinct_n(tokens, 1),
            "distinct_2": distinct_n(tokens, 2), "mean_logprob": float(logprobs.mean()),
            "mean_nucleus_size": float(sizes.double().mean()), "distinct_samples": len(set(continuations)),
            "word_share": word_share(" ".join(continuations), words),
            "samples": [prompt + text for text in continuations]}


@dataclass(frozen=True)
class DiversityPlan:
    """What the sampling-diversity measurement draws: `num_samples` samples (seeds seed, seed + 1, ...) of
    max_new_tokens from `prompt` at each top-p (greedy for None), at `temperature`."""

    prompt: str = "Once upon a"
    top_ps: tuple = (None, 0.5, 0.8, 0.95, 1.0)
    num_samples: int = 8
    max_new_tokens: int = 20
    temperature: float = 1.0
    seed: int = 0

    def __post_init__(self):
        if self.num_samples < 1 or self.max_new_tokens < 2:
            raise ValueError(f"num_samples={self.num_samples} must be at least 1 and max_new_tokens="
                             f"{self.max_new_tokens} at least 2 (distinct-2 needs a bigram).")


def sampling_diversity(models: dict, enc, plan: DiversityPlan = DiversityPlan(), *, preset: str, device,
                       words: set[str], word_list: str) -> dict:
    """Sample every model as `plan` says, at each of its top-p settings.

    Per model and setting it records distinct-1 and distinct-2 (unique n-grams over all n-grams of
    the samples), the mean log-probability of the sampled tokens under the model's full
    distribution, the mean nucleus size, and the share of the samples' words found in `words`
    (described by `word_list`). Writes artefacts/sampling_diversity.json and returns it.
    """
    prompt, top_ps, num_samples, seed = plan.prompt, plan.top_ps, plan.num_samples, plan.seed
    max_new_tokens, temperature = plan.max_new_tokens, plan.temperature
    seeds = list(range(seed, seed + num_samples))
    rows = [{"model": name, **measure_sampling_setting(model, enc, prompt, top_p, seeds, max_new_tokens, temperature,
                                                        words)}
            for name, model in models.items() for top_p in top_ps]
    model_info = {name: {"family": family_of(model), "parameters": count_parameters(model),
                         "trained": getattr(model, "checkpoint_metadata", {})} for name, model in models.items()}
    config = {"prompt": prompt, "top_ps": list(top_ps), "num_samples": num_samples, "seeds": seeds,
              "max_new_tokens": max_new_tokens, "temperature": temperature, "word_list": word_list,
              "models": model_info}
    path = write_artefact("sampling_diversity", preset=preset, config=config, results={"rows": rows}, device=device)
    return read_artefact(path)


# ---------------------------------------------------------------- the figure


DIVERSITY_PANELS = {  # each panel's title: what it measures, and how
    "distinct_1": "distinct-1: unique tokens / tokens",
    "distinct_2": "distinct-2: unique bigrams / bigrams",
    "mean_logprob": "mean log-probability (nats / token)",
    "mean_nucleus_size": "mean nucleus size (tokens)",
}


@slide_figure
def plot_sampling_diversity(artefact: dict):
    """Per sampling setting, how varied the samples are and how likely the model finds them; a line per model.

    Each panel names its measure in its title, so that the panels of a 2 x 2 grid keep their height.
    """
    rows = pd.DataFrame(artefact["results"]["rows"])
    fig, axes = subplots(2, 2, sharex=True)
    for name, runs in rows.groupby("model", sort=False):
        for ax, column in zip(axes.flat, DIVERSITY_PANELS):
            ax.plot(runs["setting"], runs[column], "o-", label=name)
    for ax, title in zip(axes.flat, DIVERSITY_PANELS.values()):
        ax.set_title(title, fontsize=pyplot().rcParams["axes.labelsize"])
        ax.margins(x=0.12)  # the first setting's name clear of the y axis's lowest tick label
    for ax in axes[-1]:
        ax.set_xlabel("sampling")
    axes.flat[-1].set_yscale("log")
    fig.legend(*axes.flat[0].get_legend_handles_labels(), loc="outside right center", title="model")
    config = artefact["config"]
    fig.suptitle(f"{config['num_samples']} samples of {config['max_new_tokens']} tokens from "
                 f"{config['prompt']!r} per setting ({artefact['preset']} preset)")
    return fig
