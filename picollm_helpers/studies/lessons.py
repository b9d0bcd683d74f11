"""What every study shares: its runs, several seeds each, and the lessons computed from them.

A study is many small trainings. `run_study` runs one function over a list of configs (each
with its seed) and keeps a progress record after every run, so that an interrupted study picks
up where it stopped: when the record of an interrupted run is there (in the notebook's
CHECKPOINT_DIR), the runs it finished with the same settings and the same code are kept, and
only the rest are computed. A completed study writes its artefact and drops the record, so a
rerun computes everything afresh. A config that fails (out of memory, say) is recorded with
its error and the study goes on. Every run carries its own provenance.

A *lesson* is one sentence a study's figure teaches, measured: the effect in the claim's
direction (positive when the claim holds), averaged over seeds, with the seed-to-seed standard
deviation of that effect as its noise. A lesson holds when its effect is positive and larger
than twice its noise; one that does not is "not resolved at this budget", never a finding.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ..artefacts import artefact_path, provenance, read_artefact, write_artefact, write_json_atomically
from ..counts import MAX_ORDER, count_label, count_model
from ..presets import PACKAGE_DIR
from ..training import evaluate

SEEDS = {"quick": (0, 1), "cpu": (0, 1), "gpu": (0, 1, 2)}
NOISE_MULTIPLE = 2  # an effect within this many standard deviations of its noise is not a finding


def study_seeds(run) -> tuple[int, ...]:
    """The seeds every point of a study is measured with on this run preset."""
    return SEEDS.get(run.name, (0, 1))


def config_key(config: dict) -> str:
    return json.dumps(config, sort_keys=True, default=str)


def code_fingerprint() -> str:
    """A hash of the helper package's source: a kept run must have been computed by the same code."""
    digest = hashlib.sha256()
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        digest.update(str(path.relative_to(PACKAGE_DIR)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def finished_runs(record: Path, preset: str, study_config: dict, fingerprint: str) -> dict[str, dict]:
    """The successful runs of an interrupted study with the same settings, computed by the same code."""
    if not record.is_file():
        return {}
    previous = json.loads(record.read_text(encoding="utf-8"))
    if previous.get("preset") != preset or config_key(previous.get("config")) != config_key(study_config):
        return {}
    return {config_key(run["config"]): run for run in previous["results"]["runs"]
            if run["status"] == "ok" and run.get("provenance", {}).get("code_fingerprint") == fingerprint}


@dataclass(frozen=True)
class Study:
    """A study to run: its name (its artefact's), its runs' configs, the function that runs one, the settings all
    its runs share (stored with it, and compared when an interrupted study picks up), and what it computes from
    all its runs (`summarize(runs)`: its lessons)."""

    name: str
    configs: list[dict]
    run_one: Callable[[dict], dict]
    settings: dict
    summarize: Callable[[list[dict]], dict] | None = None


def run_study(study: Study, *, preset: str, device, checkpoint_dir: str | Path | None = None,
              path: str | Path | None = None, reuse: list[dict] = ()) -> dict:
    """Run the study's function on every config; write artefacts/<name>.json (or `path`) at the end and return it.

    Each run is stored as {"config", "status": "ok", **results, "provenance"} or {"config",
    "status": "failed", "error", "provenance"}. The study's `summarize(runs)` adds what it computes
    from all its runs (its lessons) to the results. With a checkpoint_dir, a progress record
    <name>.progress.json is kept there after every run and removed at the end; the finished
    runs of an interrupted study with the same settings and code are kept from it, and so are the
    runs in `reuse` (finished runs of this process, of the same configs). `results` says how many
    runs this call computed and how many it kept.
    """
    name, configs, run_one, summarize = study.name, study.configs, study.run_one, study.summarize
    path = Path(path) if path else artefact_path(name)
    record = Path(checkpoint_dir) / f"{name}.progress.json" if checkpoint_dir else None
    study_config = json.loads(config_key(study.settings))
    fingerprint = code_fingerprint()
    done = finished_runs(record, preset, study_config, fingerprint) if record else {}
    done.update({config_key(run["config"]): run for run in reuse if run["status"] == "ok"})
    runs, computed = [], 0

    def results(complete: bool) -> dict:
        extra = summarize(runs) if complete and summarize else {}
        return {"complete": complete, "computed": computed, "kept": len(runs) - computed,
                "code_fingerprint": fingerprint, **extra, "runs": runs}

    kept = sum(config_key(config) in done for config in configs)
    bar = tqdm(total=len(configs), initial=kept, desc=f"{name}: runs", unit="run", disable=None)
    for index, config in enumerate(configs, start=1):
        if config_key(config) in done:
            runs.append(done[config_key(config)])
            print(f"[{index}/{len(configs)}] {config}: kept from the run of {runs[-1]['provenance']['created']}")
            continue
        print(f"[{index}/{len(configs)}] {config}", flush=True)
        try:
            outcome = {"status": "ok", **run_one(config)}
        except (RuntimeError, ValueError, MemoryError) as error:  # torch reports out-of-memory as RuntimeError
            outcome = {"status": "failed", "error": f"{type(error).__name__}: {error}"}
            print(f"    failed: {outcome['error']}")
        stamp = {**provenance(device), "code_fingerprint": fingerprint}
        runs.append({"config": config, **outcome, "provenance": stamp})
        computed += 1
        bar.update(1)
        if record:
            write_json_atomically(record, {"name": name, "preset": preset, "config": study_config,
                                           "results": results(complete=False)})
    bar.close()
    written = write_artefact(name, preset=preset, config=study_config, device=device, path=path,
                             results=results(complete=True))
    if record:
        record.unlink(missing_ok=True)
    return read_artefact(written)


# ---------------------------------------------------------------- seeds, noise and lessons


def spread(values) -> tuple[float, float]:
    """The mean of a point's values over seeds, and their seed-to-seed standard deviation (NaN for one)."""
    values = np.asarray(values, dtype=float)
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else math.nan


def lesson(claim: str, effects, runs_losses=None, counting: dict | list[dict] | None = None) -> dict:
    """A lesson from one claim and its effect measured once per seed, signed so that positive supports it.

    measured is the mean effect, noise its seed-to-seed standard deviation, and the lesson holds
    when the effect is positive and more than NOISE_MULTIPLE times its noise (never with one seed).
    Given the held-out losses of the runs it rests on and the count models of their training text
    (count_baselines; a list, one for each run, where the runs train on different text), it also records where
    those runs stand against counting (against_counting).
    """
    measured, noise = spread(effects)
    holds = len(effects) > 1 and measured > 0 and measured > NOISE_MULTIPLE * noise
    found = {"claim": claim, "measured": measured, "noise": noise, "seeds": len(effects), "holds": bool(holds)}
    if runs_losses is not None and counting is not None:
        found["counting"] = against_counting(runs_losses, counting)
    return found


# ---------------------------------------------------------------- counting, the baseline beside every run


def count_baselines(streams, heldout, orders=range(1, MAX_ORDER + 1)) -> dict:
    """What counting alone scores on a held-out set, with count models fitted on these training streams (a
    corpus's, or a slice's): each order's nats per token and bits per character, and the unigram's, the
    bigram's and the best order's loss, with the seconds fitting and scoring took."""
    started = time.perf_counter()
    streams = streams.train_streams() if hasattr(streams, "train_streams") else streams
    scores = {order: evaluate(count_model(streams, order), heldout) for order in orders}
    best = min(scores, key=lambda order: scores[order].nats_per_token)
    return {"train_tokens": int(sum(len(stream) for stream in streams)), "heldout_tokens": scores[best].tokens,
            "orders": {str(order): {"nats_per_token": score.nats_per_token, "bits_per_char": score.bits_per_char}
                       for order, score in scores.items()},
            "unigram": scores[min(orders)].nats_per_token, "bigram": scores[2].nats_per_token if 2 in scores else None,
            "best_order": best, "best": scores[best].nats_per_token, "seconds": time.perf_counter() - started}


def first_seconds(losses: list[float], counting: dict, budget: str, names: list[str] | None = None) -> str:
    """The words a claim adds when it rests on runs not yet past the bigram count model of their text: it is about
    the first seconds of learning, at `budget` (naming the runs still behind, where they have names)."""
    behind = [loss >= counting["bigram"] for loss in losses]
    if not any(behind):
        return ""
    who = " and ".join(name for name, late in zip(names, behind) if late) + " " if names else ""
    return f" (about the first seconds of learning, {budget}: {who}not yet past counting)"


def against_counting(runs_losses, counting: dict | list[dict]) -> dict:
    """Where the runs a lesson rests on stand against counting: the run furthest from passing the bigram count
    model of its own training text (one count model for all the runs, or one for each), its mean held-out loss, and
    how far below that text's best count model and bigram one it lies (negative: not yet past it)."""
    countings = counting if isinstance(counting, list) else [counting] * len(runs_losses)
    loss, worst = max(zip(runs_losses, countings), key=lambda pair: pair[0] - pair[1]["bigram"])
    loss = float(loss)
    return {"runs_loss": loss, "best_count_model": count_label(worst["best_order"]),
            "best_count_loss": worst["best"], "below_best_by": worst["best"] - loss,
            "bigram_loss": worst["bigram"], "below_bigram_by": worst["bigram"] - loss,
            "past_bigram": loss < worst["bigram"]}


def with_noise(measured: float, noise: float) -> str:
    """measured ± noise, both to the decimal place of the noise's second significant digit."""
    scale = abs(noise) or abs(measured)
    decimals = max(1 - math.floor(math.log10(scale)), 0) if scale and math.isfinite(scale) else 2
    return f"{measured:,.{decimals}f} ± {noise:,.{decimals}f}"


def counting_words(counting: dict) -> str:
    """Where a lesson's runs stand against counting, in words."""
    if counting["below_best_by"] > 0:
        return f"its runs end {counting['below_best_by']:.2f} below the {counting['best_count_model']}"
    if counting["past_bigram"]:
        return (f"its runs end {counting['below_bigram_by']:.2f} below the bigram counts, not yet past the "
                f"{counting['best_count_model']}")
    return f"its runs are not yet past the bigram counts ({-counting['below_bigram_by']:.2f} above)"


def lesson_line(lesson: dict) -> str:
    """A lesson as a notebook or a slide states it: a finding only where it holds beyond its seed-to-seed noise, and
    where its runs stand against counting."""
    evidence = f"{with_noise(lesson['measured'], lesson['noise'])} over {lesson['seeds']} seeds"
    if "counting" in lesson:
        evidence += f"; {counting_words(lesson['counting'])}"
    if lesson["holds"]:
        return f"{lesson['claim']} (measured {evidence})"
    return f"Not resolved at this budget: {lesson['claim']} (measured {evidence})"


def lesson_brief(lesson: dict) -> str:
    """A lesson in as few words as keep its meaning, for a slide that must show every lesson: the claim without its
    asides and units, the effect with its noise, and the runs' distance to counting."""
    claim = re.sub(r" \([^()]*(\([^()]*\)[^()]*)*\)", "", lesson["claim"])
    claim = re.split(r", (?:in nats per token|in seconds|as a ratio minus 1)", claim)[0]
    brief = f"{claim}: {with_noise(lesson['measured'], lesson['noise'])}"
    if "counting" in lesson:
        counting = lesson["counting"]
        brief += (f"; {counting['below_best_by']:.2f} below counting" if counting["below_best_by"] > 0 else
                  f"; not past the {counting['best_count_model']}")
    return brief if lesson["holds"] else f"Not resolved: {brief}"


def print_lessons(artefact: dict) -> None:
    """Every lesson a study's artefact computed, one line each."""
    for item in artefact["results"]["lessons"]:
        print(lesson_line(item))


def runs_table(artefact: dict) -> pd.DataFrame:
    """A study's successful runs as a table, their config's fields and their results as columns."""
    return pd.DataFrame([{**run["config"], **{key: value for key, value in run.items() if key != "config"}}
                         for run in artefact["results"]["runs"] if run["status"] == "ok"])


def runs_by(runs: list[dict], *keys: str) -> dict[tuple, list[dict]]:
    """A study's successful runs grouped by some of their config's keys (None where a config has no such
    key), the seeds of a point together."""
    groups: dict[tuple, list[dict]] = {}
    for run in runs:
        if run["status"] == "ok":
            groups.setdefault(tuple(run["config"].get(key) for key in keys), []).append(run)
    return groups


def per_seed(runs: list[dict], metric: Callable[[dict], float]) -> dict[int, float]:
    """A metric of each seed's run of one point."""
    return {run["config"]["seed"]: metric(run) for run in runs}


def paired_effects(better: dict[int, float], worse: dict[int, float]) -> list[float]:
    """worse - better for each seed both were measured with: a per-seed effect (positive: `better` is lower)."""
    return [worse[seed] - better[seed] for seed in sorted(better.keys() & worse.keys())]
