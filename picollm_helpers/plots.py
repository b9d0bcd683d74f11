"""Section 9. Plots and widgets: figures drawn from training histories and artefacts."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import torch

from .presets import ARTEFACTS_DIR
from .sampling import check_sampling_args, nucleus_mask


def plot_loss_curves(history: pd.DataFrame, ax=None, title: str = "Training loss", column: str = "loss"):
    """Loss against step, one line per model in the history (and held-out loss as dashed points)."""
    ax = ax or plt.subplots(figsize=(7, 4))[1]
    for name, runs in history.groupby("model", sort=False):
        line, = ax.plot(runs["step"], runs[column], label=f"{name} train")
        tested = runs.dropna(subset=["test_loss"])
        if len(tested):
            ax.plot(tested["step"], tested["test_loss"], "o--", color=line.get_color(), label=f"{name} test")
    ax.set(xlabel="optimizer step", ylabel="cross-entropy loss (nats)", title=title)
    ax.grid(alpha=0.3)
    ax.legend()
    return ax


def plot_history_panels(history: pd.DataFrame, title: str, test_loss: bool = False):
    """Loss against step, a line per model; with test_loss, a second panel of the held-out loss."""
    fig, axes = plt.subplots(1, 2 if test_loss else 1, figsize=(12 if test_loss else 7, 4), squeeze=False,
                             layout="constrained")
    plot_loss_curves(history, ax=axes[0, 0], title="training loss")
    if test_loss:
        plot_loss_curves(history.dropna(subset=["test_loss"]), ax=axes[0, 1], title="held-out loss",
                         column="test_loss")
    fig.suptitle(title)
    return fig


def plot_speed_bars(names: list[str], tokens_per_s: list[float], ax=None, title: str = "Training speed"):
    """Tokens per second as horizontal bars on a log scale, each labelled with its value."""
    ax = ax or plt.subplots(figsize=(7, 0.5 + 0.5 * len(names)))[1]
    bars = ax.barh(names, tokens_per_s, color="tab:blue")
    ax.bar_label(bars, labels=[f"{value:,.0f}" for value in tokens_per_s], padding=3)
    ax.set_xscale("log")
    ax.set(xlabel="tokens / s (log scale)", title=title)
    ax.invert_yaxis()
    return ax


def plot_kgram_comparison(artefact: dict):
    """Loss against step for each design, and tokens/s of each design and of the starter's loop."""
    results = artefact["results"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4), layout="constrained")
    plot_loss_curves(pd.DataFrame(results["history"]), ax=left, title="training loss, same batches and seed")
    names = [*results["designs"], "onehot,\nstarter's loop"]
    speeds = [row["tokens_per_s"] for row in results["designs"].values()] + [results["starter_loop"]["tokens_per_s"]]
    plot_speed_bars(names, speeds, ax=right, title="training speed")
    fig.suptitle(f"k-gram MLP designs ({artefact['preset']} preset, {artefact['device']})")
    return fig


def plot_transformer_comparison(artefact: dict):
    """Loss against step and tokens/s for every preset and baseline in transformer_metrics.json."""
    results = artefact["results"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4), layout="constrained")
    plot_loss_curves(pd.DataFrame(results["history"]), ax=left, title="training loss, same batches and seed")
    rows = results["models"]
    plot_speed_bars(list(rows), [row["tokens_per_s"] for row in rows.values()], ax=right, title="training speed")
    fig.suptitle(f"Transformer presets and baselines ({artefact['preset']} preset, {artefact['device']})")
    return fig


def plot_attention_map(weights: torch.Tensor, labels: list[str], ax=None, title: str = "attention"):
    """One head's attention weights (query rows, key columns) as a heat map over the prompt's tokens."""
    ax = ax or plt.subplots(figsize=(6, 5))[1]
    image = ax.imshow(weights.detach().cpu().numpy(), cmap="viridis", vmin=0.0)
    ax.set_xticks(range(len(labels)), labels, rotation=90)
    ax.set_yticks(range(len(labels)), labels)
    ax.set(xlabel="attends to (key)", ylabel="token (query)", title=title)
    plt.colorbar(image, ax=ax, fraction=0.046)
    return ax


# ---------------------------------------------------------------- sampling (notebook 04 and its lab)

NUCLEUS_COLOUR, TAIL_COLOUR, CUT_OFF_COLOUR = "tab:blue", "lightgrey", "tab:red"


def token_label(enc, token_id: int) -> str:
    """A token as tick-label text: a space shows as '␣', a newline as '↵', and '$' starts no math."""
    return enc.decode([token_id]).replace(" ", "␣").replace("\n", "↵").replace("$", r"\$")


def plot_next_token_distribution(logits: torch.Tensor, enc, p: float, temperature: float = 1.0, top_n: int = 30,
                                 ax=None):
    """The top_n most probable next tokens as bars: the top-p nucleus coloured, a dashed line at its cut-off."""
    check_sampling_args(temperature, top_p=p)
    probs = (logits.detach().float().cpu() / temperature).softmax(dim=-1)
    kept = nucleus_mask(probs, p)
    size, mass = int(kept.sum()), float(probs[kept].sum())
    top = probs.topk(min(top_n, len(probs)))
    shown = top.indices.tolist()
    ax = ax or plt.subplots(figsize=(10, 3.8))[1]
    ax.bar(range(len(shown)), top.values.numpy(), color=[NUCLEUS_COLOUR if kept[i] else TAIL_COLOUR for i in shown])
    ax.set_xticks(range(len(shown)), [token_label(enc, i) for i in shown], rotation=90)
    ax.set_xlim(-0.7, len(shown) - 0.3)
    summary = f"nucleus at p = {p:.2f}: {size:,} tokens holding {mass:.1%} of the probability"
    if size <= len(shown):
        ax.axvline(size - 0.5, color=CUT_OFF_COLOUR, linestyle="--", label="cut-off")
        left_half = size <= len(shown) / 2
        ax.annotate(summary, xy=(size - 0.5, 0.97), xycoords=("data", "axes fraction"), va="top",
                    xytext=(5 if left_half else -5, 0), textcoords="offset points", color=CUT_OFF_COLOUR,
                    ha="left" if left_half else "right")
    else:
        ax.annotate(f"{summary}; the cut-off lies beyond the {len(shown)} shown →", xy=(0.99, 0.97),
                    xycoords="axes fraction", ha="right", va="top", color=CUT_OFF_COLOUR)
    ax.set(ylabel="probability", title=f"Next token after the prompt (temperature {temperature:g}): "
                                       f"the {len(shown)} most probable of {len(probs):,}")
    return ax


DIVERSITY_PANELS = {
    "distinct_1": "distinct-1 (unique tokens / tokens)",
    "distinct_2": "distinct-2 (unique bigrams / bigrams)",
    "mean_logprob": "mean log-probability (nats / token)",
    "mean_nucleus_size": "mean nucleus size (tokens)",
}


def plot_sampling_diversity(artefact: dict):
    """Per sampling setting, how varied the samples are and how likely the model finds them; a line per model."""
    rows = pd.DataFrame(artefact["results"]["rows"])
    fig, axes = plt.subplots(2, 2, figsize=(11, 7), layout="constrained")
    for name, runs in rows.groupby("model", sort=False):
        for ax, column in zip(axes.flat, DIVERSITY_PANELS):
            ax.plot(runs["setting"], runs[column], "o-", label=name)
    for ax, label in zip(axes.flat, DIVERSITY_PANELS.values()):
        ax.set(xlabel="sampling", ylabel=label)
        ax.grid(alpha=0.3)
    axes.flat[-1].set_yscale("log")
    fig.legend(*axes.flat[0].get_legend_handles_labels(), loc="outside right upper", title="model")
    config = artefact["config"]
    fig.suptitle(f"{config['num_samples']} samples of {config['max_new_tokens']} tokens from "
                 f"{config['prompt']!r} per setting ({artefact['preset']} preset)")
    return fig


# ---------------------------------------------------------------- sweeps (notebooks 05 to 07)

def ok_runs(artefact: dict) -> pd.DataFrame:
    """The successful runs of a sweep artefact, config fields and results as columns."""
    return pd.DataFrame([{**run["config"], **{k: v for k, v in run.items() if k != "config"}}
                         for run in artefact["results"]["runs"] if run["status"] == "ok"])


def sweep_title(artefact: dict, what: str) -> str:
    return f"{what} ({artefact['preset']} preset, {artefact['device']})"


def plot_custom_data_sweep(artefact: dict):
    """Final training loss against corpus size, a line per model."""
    runs = ok_runs(artefact)
    fig, ax = plt.subplots(figsize=(7, 4), layout="constrained")
    for model, rows in runs.groupby("model", sort=False):
        ax.plot(rows["sequences"], rows["final_loss"], "o-", label=model)
    ax.set(xlabel="training sequences", ylabel="final training loss (nats)",
           title=sweep_title(artefact, f"{artefact['config']['steps']} steps at each corpus size"))
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def plot_training_budget(artefact: dict):
    """Train and held-out loss against steps per epoch, a pair of lines per model."""
    runs = ok_runs(artefact)
    fig, ax = plt.subplots(figsize=(7, 4), layout="constrained")
    for model, rows in runs.groupby("model", sort=False):
        line, = ax.plot(rows["steps_per_epoch"], rows["final_loss"], "o-", label=f"{model}, train")
        ax.plot(rows["steps_per_epoch"], rows["final_test_loss"], "s--", color=line.get_color(),
                label=f"{model}, held out")
    ax.set(xlabel=f"steps per epoch ({artefact['config']['epochs']} epochs)", ylabel="loss (nats)",
           title=sweep_title(artefact, "training budget, 60/40 split"))
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def plot_overfitting(artefact: dict):
    """Per model, train and held-out loss against step, with the step of the lowest held-out loss marked."""
    runs = ok_runs(artefact)
    fig, axes = plt.subplots(1, len(runs), figsize=(6 * len(runs), 4), squeeze=False, layout="constrained")
    for ax, (_, run) in zip(axes.flat, runs.iterrows()):
        history = pd.DataFrame(run["history"])
        evaluated = history.dropna(subset=["test_loss"])
        ax.plot(history["step"], history["loss"], label="train", alpha=0.8)
        ax.plot(evaluated["step"], evaluated["test_loss"], "o-", label="held out")
        ax.axvline(run["best_test_step"], color="tab:red", linestyle="--",
                   label=f"lowest held-out loss, step {run['best_test_step']}")
        ax.set(xlabel="step", ylabel="loss (nats)", title=run["model"])
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(sweep_title(artefact, f"{artefact['config']['train_sequences']} training sequences"))
    return fig


def plot_hparam_heatmaps(artefact: dict, rows: str = "embed_size", columns: str = "learning_rate",
                         value: str = "final_test_loss"):
    """Per model, a heat map of `value` over two parameters (the other parameters at their most common value)."""
    runs = ok_runs(artefact)
    models = list(dict.fromkeys(runs["model"]))
    fig, axes = plt.subplots(1, len(models), figsize=(5.5 * len(models), 4), squeeze=False, layout="constrained")
    for ax, model in zip(axes.flat, models):
        subset = runs[runs["model"] == model]
        for other in {"embed_size", "block_size", "learning_rate", "depth"} - {rows, columns}:
            subset = subset[subset[other] == subset[other].mode().iloc[0]]
        table = subset.pivot_table(index=rows, columns=columns, values=value)
        image = ax.imshow(table.to_numpy(), cmap="viridis_r", aspect="auto")
        ax.set_xticks(range(len(table.columns)), [f"{c:g}" for c in table.columns])
        ax.set_yticks(range(len(table.index)), [f"{r:g}" for r in table.index])
        for (i, j), loss in pd.DataFrame(table.to_numpy()).stack().items():
            on_light_cell = image.norm(loss) < 0.5  # viridis_r is yellow at the low end
            ax.text(j, i, f"{loss:.2f}", ha="center", va="center", color="black" if on_light_cell else "white")
        ax.set(xlabel=columns, ylabel=rows, title=f"{model}: {value}")
        plt.colorbar(image, ax=ax)
    fig.suptitle(sweep_title(artefact, "hyperparameters"))
    return fig


def plot_quality_against_speed(artefact: dict):
    """Held-out loss against training tokens/s, a point per config: lower and to the right is better."""
    runs = ok_runs(artefact)
    fig, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
    for model, rows in runs.groupby("model", sort=False):
        ax.scatter(rows["tokens_per_s"], rows["final_test_loss"], label=model, s=40)
    ax.set_xscale("log")
    ax.set(xlabel="training tokens / s (log scale)", ylabel="held-out loss (nats)",
           title=sweep_title(artefact, "quality against speed"))
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def save_figure(fig, name: str) -> Path:
    """Save a figure as artefacts/<name>.png beside the artefact it was drawn from, for slides."""
    path = ARTEFACTS_DIR / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    fig.savefig(temporary, dpi=110, format="png")
    os.replace(temporary, path)
    return path
