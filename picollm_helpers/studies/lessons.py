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
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from ..artefacts import artefact_path, provenance, read_artefact, write_artefact, write_json_atomically
from ..presets import PACKAGE_DIR

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


def run_study(name: str, configs: list[dict], run_one: Callable[[dict], dict], *, preset: str, device,
              study_config: dict, summarize: Callable[[list[dict]], dict] | None = None,
              checkpoint_dir: str | Path | None = None, path: str | Path | None = None) -> dict:
    """Run `run_one` on every config; write artefacts/<name>.json (or `path`) at the end and return it.

    Each run is stored as {"config", "status": "ok", **results, "provenance"} or {"config",
    "status": "failed", "error", "provenance"}. `summarize(runs)` adds what the study computes
    from all its runs (its lessons) to the results. With a checkpoint_dir, a progress record
    <name>.progress.json is kept there after every run and removed at the end; the finished
    runs of an interrupted study with the same settings and code are kept from it. `results`
    says how many runs this call computed and how many it kept.
    """
    path = Path(path) if path else artefact_path(name)
    record = Path(checkpoint_dir) / f"{name}.progress.json" if checkpoint_dir else None
    study_config = json.loads(config_key(study_config))
    fingerprint = code_fingerprint()
    done = finished_runs(record, preset, study_config, fingerprint) if record else {}
    runs, computed = [], 0

    def results(complete: bool) -> dict:
        extra = summarize(runs) if complete and summarize else {}
        return {"complete": complete, "computed": computed, "kept": len(runs) - computed,
                "code_fingerprint": fingerprint, **extra, "runs": runs}

    for index, config in enumerate(configs, start=1):
        if config_key(config) in done:
            runs.append(done[config_key(config)])
            print(f"[{index}/{len(configs)}] {config}: kept from the interrupted run of "
                  f"{runs[-1]['provenance']['created']}")
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
        if record:
            write_json_atomically(record, {"name": name, "preset": preset, "config": study_config,
                                           "results": results(complete=False)})
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


def lesson(claim: str, effects) -> dict:
    """A lesson from one claim and its effect measured once per seed, signed so that positive supports it.

    measured is the mean effect, noise its seed-to-seed standard deviation, and the lesson holds
    when the effect is positive and more than NOISE_MULTIPLE times its noise (never with one seed).
    """
    measured, noise = spread(effects)
    holds = len(effects) > 1 and measured > 0 and measured > NOISE_MULTIPLE * noise
    return {"claim": claim, "measured": measured, "noise": noise, "seeds": len(effects), "holds": bool(holds)}


def with_noise(measured: float, noise: float) -> str:
    """measured ± noise, both to the decimal place of the noise's second significant digit."""
    scale = abs(noise) or abs(measured)
    decimals = max(1 - math.floor(math.log10(scale)), 0) if scale and math.isfinite(scale) else 2
    return f"{measured:,.{decimals}f} ± {noise:,.{decimals}f}"


def lesson_line(lesson: dict) -> str:
    """A lesson as a notebook or a slide states it: a finding only where it holds beyond its seed-to-seed noise."""
    evidence = f"{with_noise(lesson['measured'], lesson['noise'])} over {lesson['seeds']} seeds"
    if lesson["holds"]:
        return f"{lesson['claim']} (measured {evidence})"
    return f"Not resolved at this budget: {lesson['claim']} (measured {evidence})"


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
