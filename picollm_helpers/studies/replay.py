"""Training one run of a study again from its artefact: `pico-llm --rerun artefacts/NAME.json --run N`.

A study's artefact records its settings and, for each run, its config, what it measured and how it trained
(its whole run description). The study's own code, given the recorded settings, rebuilds the function that
trained the run; given the recorded config it takes the same steps from the same seed, so on the same machine
it measures the same losses. A run budgeted in seconds also records the learning rate of every step it took,
and is trained again for exactly those steps. Before training, the settings the code would use now are
compared with the recorded ones, field by field: a run whose study has changed since is named, not retrained.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from ..presets import InputError, get_run_preset
from ..tokenizer import get_tokenizer
from ..training import BEFORE_RECORDED
from .fastest_learner import fastest_learner_plan
from .hyperparameters import width_plan
from .lessons import Study
from .notes_runs import SizeSweep, custom_sweep_plan
from .overfitting import overfitting_plan
from .own_text import own_text_plan

SAME_TO = 1e-6  # a replayed loss this close to the recorded one is the same run


def race_replay_plan(enc, run, settings: dict, device) -> Study:
    kgram = next(name for name in settings["models"] if name.startswith("k-gram "))
    return fastest_learner_plan(enc, run, device=device, best_kgram=kgram.removeprefix("k-gram "),
                                seeds=settings["seeds"], prompt=settings["prompt"])


def own_text_replay_plan(enc, run, settings: dict, device) -> Study:
    return own_text_plan(enc, run, device=device, input_dir=settings["your_text"], prompt=settings["prompt"],
                         seeds=settings["seeds"])


def overfitting_replay_plan(enc, run, settings: dict, device) -> Study:
    return overfitting_plan(enc, run, device=device, seeds=settings["seeds"])


def width_replay_plan(enc, run, settings: dict, device) -> Study:
    return width_plan(enc, run, device=device, seeds=settings["seeds"])


def sweep_replay_plan(enc, run, settings: dict, device) -> Study:
    sweep = SizeSweep(sizes=tuple(settings["sizes"]), steps=settings["steps"], prompt=settings["prompt"],
                      seed=settings["seed"], input_dir=settings["data"])
    return custom_sweep_plan(enc, run, sweep, device=device)


STUDY_PLANS = {  # a study's name -> its plan, rebuilt from the settings its artefact recorded
    "fastest_learner": race_replay_plan,
    "own_text": own_text_replay_plan,
    "overfitting": overfitting_replay_plan,
    "hyperparameter_rates": width_replay_plan,
    "hyperparameters": width_replay_plan,
    "custom_data_sweep": sweep_replay_plan,
}
NOT_RECORDED = ("run", "learning_rates", "history", "provenance", "status", "config")  # kept, not compared


@dataclass(frozen=True)
class StudyRun:
    """One recorded run of a study's artefact: the study, the run preset, the settings, and the run itself."""

    path: str
    study: str
    preset: str
    settings: dict
    index: int
    record: dict

    @classmethod
    def read(cls, path: str | Path, artefact: dict, index: int | None) -> StudyRun:
        """Run `index` of the study artefact at `path`, or one clear message naming what to give instead."""
        if artefact["name"] not in STUDY_PLANS:
            raise InputError(f"--rerun {path}: {artefact['name']} is not a study whose runs can be trained again "
                             f"(its notebook or benchmark makes it again); give the artefact of one of "
                             f"{', '.join(sorted(STUDY_PLANS))}, or the file a run's --metrics_json wrote")
        runs = artefact["results"]["runs"]
        if index is None or not 0 <= index < len(runs):
            raise InputError(f"--rerun {path} holds {len(runs)} runs (listed above); choose one with --run N"
                             f"{f' (--run {index} is not one of them)' if index is not None else ''}")
        if runs[index]["status"] != "ok":
            raise InputError(f"--rerun {path} --run {index}: that run failed ({runs[index]['error']}); choose another")
        if "run" not in runs[index]:
            raise InputError(f"--rerun {path}: its runs were made before a study's runs recorded how they trained; "
                             "make it again (make run) and replay a run of the new one")
        return cls(str(path), artefact["name"], artefact["preset"], artefact["config"], index, runs[index])



def study_runs_listing(artefact: dict) -> str:
    """The runs of a study's artefact, one a line: the number --run takes, and the run's config."""
    return "\n".join(f"  {number:>3}  {json.dumps(run['config'])}"
                     for number, run in enumerate(artefact["results"]["runs"]))


def changed_settings(recorded: dict, now: dict, prefix: str = "") -> list[str]:
    """Each setting the code would use now that differs from the recorded one, as "name: recorded X, now Y"
    (settings the artefact adds to those, such as the rates a study chose, are not compared)."""
    changes = []
    for name, value in now.items():
        was = recorded.get(name, BEFORE_RECORDED.get(name) if prefix == "recipe." else None)
        if isinstance(value, dict) and isinstance(was, dict):
            changes += changed_settings(was, value, f"{prefix}{name}.")
        elif json.dumps(value, sort_keys=True, default=str) != json.dumps(was, sort_keys=True, default=str):
            changes.append(f"{prefix}{name}: recorded {was!r}, now {value!r}")
    return changes


def train_study_run(run: StudyRun, *, device) -> dict:
    """The recorded run trained again by its study's code, after checking that the study's settings are the same
    (what it measures, as the artefact records it)."""
    enc = get_tokenizer()
    plan = STUDY_PLANS[run.study](enc, get_run_preset(run.preset), run.settings, device)
    now = json.loads(json.dumps(plan.settings, default=str))
    changes = changed_settings(run.settings, now)
    if changes:
        raise InputError(f"--rerun {run.path}: the {run.study} study has changed since this artefact was made "
                         f"({'; '.join(changes[:3])}); make it again (make run) and replay a run of the new one")
    config = {**run.record["config"], **({"learning_rates": run.record["learning_rates"]}
                                         if "learning_rates" in run.record else {})}
    return plan.run_one(config)


def measured_numbers(result: dict, prefix: str = "") -> dict[str, float]:
    """Every number a run measured, by its path ("curve[-1].loss": a list's last item), less what only records
    the run (its description, history and provenance)."""
    numbers = {}
    for name, value in result.items():
        if name in NOT_RECORDED:
            continue
        if isinstance(value, list) and value:
            value = value[-1]
            name = f"{name}[-1]"
        if isinstance(value, dict):
            numbers.update(measured_numbers(value, f"{prefix}{name}."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            numbers[f"{prefix}{name}"] = float(value)
    return numbers


def is_loss(name: str) -> bool:
    """A number that says how well the run learnt (a loss in nats or bits), not how fast it ran."""
    return any(word in name.split(".")[-1] for word in ("loss", "bpc"))


def replay_comparison(recorded: dict, replayed: dict) -> list[dict]:
    """Each loss the run measured, recorded and replayed, and whether they agree to SAME_TO."""
    before, after = measured_numbers(recorded), measured_numbers(replayed)
    rows = []
    for name in sorted(set(before) & set(after)):
        if is_loss(name) and not (math.isnan(before[name]) and math.isnan(after[name])):
            difference = abs(after[name] - before[name])
            rows.append({"measure": name, "recorded": before[name], "replayed": after[name],
                         "difference": difference, "same": difference <= SAME_TO})
    return rows
