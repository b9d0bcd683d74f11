"""The studies: their runner (the artefact form, failures, provenance, picking up after an interruption),
lessons and their noise, what samples are measured by, and the committed studies' lessons."""

import json
import math
import time

import numpy as np
import pytest

import picollm_helpers as h

CONFIGS = [{"model": "LSTM", "size": size} for size in (1, 2, 3, 4)]
STUDIES = ("fastest_learner", "own_text", "overfitting", "hyperparameter_rates", "hyperparameters")


def square(config):
    return {"loss": config["size"] ** 2}


def test_artefact_form_and_a_failure_recorded(tmp_path):
    def sometimes_out_of_memory(config):
        if config["size"] == 2:
            raise RuntimeError("CUDA out of memory (simulated)")
        return square(config)

    path = tmp_path / "demo.json"
    study = h.Study("demo", CONFIGS, sometimes_out_of_memory, {"steps": 3},
                    summarize=lambda runs: {"lessons": [len(runs)]})
    artefact = h.run_study(study, preset="quick", device="cpu", path=path)
    assert set(artefact) == set(h.ARTEFACT_FIELDS)
    assert artefact["name"] == "demo" and artefact["config"] == {"steps": 3} and artefact["preset"] == "quick"
    runs = artefact["results"]["runs"]
    assert artefact["results"]["complete"] is True and artefact["results"]["lessons"] == [4]
    assert [run["status"] for run in runs] == ["ok", "failed", "ok", "ok"]
    assert runs[1]["error"] == "RuntimeError: CUDA out of memory (simulated)" and "loss" not in runs[1]
    assert [run.get("loss") for run in runs] == [1, None, 9, 16]
    assert json.loads(path.read_text()) == artefact


def test_an_interrupted_study_picks_up_from_its_record_and_a_finished_one_starts_afresh(tmp_path):
    path, record = tmp_path / "demo.json", tmp_path / "checkpoints" / "demo.progress.json"

    def interrupted(config):
        if config["size"] == 3:
            raise KeyboardInterrupt
        return square(config)

    with pytest.raises(KeyboardInterrupt):
        h.run_study(h.Study("demo", CONFIGS, interrupted, {"steps": 3}), preset="quick", device="cpu",
                    path=path, checkpoint_dir=tmp_path / "checkpoints")
    assert not path.exists(), "no artefact until the study is complete"
    partial = json.loads(record.read_text())
    assert [run["config"]["size"] for run in partial["results"]["runs"]] == [1, 2]
    time.sleep(1.1)  # so that a stamp written now differs from the interrupted run's
    ran = []

    def counting(config):
        ran.append(config["size"])
        return square(config)

    artefact = h.run_study(h.Study("demo", CONFIGS, counting, {"steps": 3}), preset="quick", device="cpu",
                           path=path, checkpoint_dir=tmp_path / "checkpoints")
    assert ran == [3, 4], "finished configs must not run again"
    assert [run["loss"] for run in artefact["results"]["runs"]] == [1, 4, 9, 16]
    assert (artefact["results"]["computed"], artefact["results"]["kept"]) == (2, 2)
    assert artefact["results"]["runs"][:2] == partial["results"]["runs"], "kept runs keep their own stamps"
    assert not record.exists(), "a complete study drops its progress record"
    h.run_study(h.Study("demo", CONFIGS, counting, {"steps": 3}), preset="quick", device="cpu",
                path=path, checkpoint_dir=tmp_path / "checkpoints")
    assert ran == [3, 4, 1, 2, 3, 4], "a rerun of a finished study computes everything afresh"


def test_kept_runs_must_come_from_the_same_code_and_settings(tmp_path, monkeypatch):
    record_dir = tmp_path / "checkpoints"

    def stop_at_two(config):
        if config["size"] == 2:
            raise KeyboardInterrupt
        return square(config)

    def interrupt():
        with pytest.raises(KeyboardInterrupt):
            h.run_study(h.Study("demo", CONFIGS, stop_at_two, {"steps": 3}), preset="quick", device="cpu",
                        path=tmp_path / "d.json", checkpoint_dir=record_dir)

    ran = []
    counting = lambda config: ran.append(config["size"]) or square(config)  # noqa: E731
    interrupt()
    h.run_study(h.Study("demo", CONFIGS, counting, {"steps": 5}), preset="quick", device="cpu",
                path=tmp_path / "d.json", checkpoint_dir=record_dir)
    assert ran == [1, 2, 3, 4], "other settings start afresh"
    interrupt()
    monkeypatch.setattr(h.studies.lessons, "code_fingerprint", lambda: "changed-code")
    h.run_study(h.Study("demo", CONFIGS, counting, {"steps": 3}), preset="quick", device="cpu",
                path=tmp_path / "d.json", checkpoint_dir=record_dir)
    assert ran == [1, 2, 3, 4] * 2, "other code starts afresh"


def test_runs_carry_their_own_provenance(tmp_path):
    artefact = h.run_study(h.Study("demo", CONFIGS[:1], square, {}), preset="quick", device="cpu",
                           path=tmp_path / "d.json")
    stamp = artefact["results"]["runs"][0]["provenance"]
    assert set(stamp) == {"created", "git_commit", "device", "torch_version", "base_corpus", "code_fingerprint"}
    assert stamp["code_fingerprint"] == h.code_fingerprint() == artefact["results"]["code_fingerprint"]


# ---------------------------------------------------------------- lessons


def test_a_lesson_holds_only_beyond_twice_its_seed_noise():
    clear = h.lesson("A beats B", [0.50, 0.54, 0.46])
    assert clear["measured"] == pytest.approx(0.5) and clear["noise"] == pytest.approx(0.04) and clear["holds"]
    assert clear["seeds"] == 3 and set(clear) == {"claim", "measured", "noise", "seeds", "holds"}
    within_noise = h.lesson("A beats B", [0.3, -0.1])
    assert within_noise["measured"] == pytest.approx(0.1) and not within_noise["holds"]
    wrong_sign = h.lesson("A beats B", [-0.5, -0.6])
    assert not wrong_sign["holds"]
    assert not h.lesson("A beats B", [0.5])["holds"], "one seed has no noise to measure"


def test_a_lesson_that_does_not_hold_says_so():
    assert h.lesson_line(h.lesson("A beats B", [0.50, 0.54])) == "A beats B (measured 0.520 ± 0.028 over 2 seeds)"
    assert h.lesson_line(h.lesson("A beats B", [0.3, -0.1])) == \
        "Not resolved at this budget: A beats B (measured 0.10 ± 0.28 over 2 seeds)"


def test_paired_effects_are_per_seed_differences():
    runs = [{"config": {"point": p, "seed": s}, "status": "ok", "loss": loss}
            for (p, s), loss in {("a", 0): 1.0, ("a", 1): 2.0, ("b", 0): 1.5, ("b", 1): 2.1}.items()]
    groups = h.runs_by(runs, "point")
    loss = lambda run: run["loss"]  # noqa: E731
    assert h.paired_effects(h.per_seed(groups[("a",)], loss), h.per_seed(groups[("b",)], loss)) == \
        pytest.approx([0.5, 0.1])


# ---------------------------------------------------------------- what samples are measured by


def test_copied_spans_are_eight_words_found_verbatim_in_the_bundled_texts():
    play = h.read_text_file(h.PLAYS_DIR / "as_you_like_it.txt")
    quoted = " ".join(h.words_of(play)[1000:1012])
    assert h.copied_span_share([quoted]) == 1.0
    assert h.copied_span_share(["the cat sat on the mat with a hat and a bat"]) == 0.0
    assert math.isnan(h.copied_span_share(["too short"]))


def test_memorisation_measures():
    training = [[1, 2, 3, 4, 5, 6]]
    assert h.copied_ngram_fraction([1, 2, 3, 4, 5], training, n=4) == 1.0
    assert h.copied_ngram_fraction([1, 2, 3, 4, 9], training, n=4) == 0.5
    assert h.word_share("The harbor, the fog!", {"the", "harbor"}) == 0.75
    assert h.copied_ngram_fraction([1, 2, 3, 4], [np.array([9, 1, 2, 3, 4], dtype=np.uint16)], n=4) == 1.0


# ---------------------------------------------------------------- the committed studies


@pytest.mark.parametrize("name", STUDIES)
def test_each_study_computes_lessons_that_hold_where_they_say_so(name):
    artefact = h.read_artefact(h.artefact_path(name, h.BUNDLED_ARTEFACTS_DIR))
    lessons = artefact["results"]["lessons"]
    assert lessons
    for item in lessons:
        assert set(item) == {"claim", "measured", "noise", "seeds", "holds", "counting"}
        assert isinstance(item["claim"], str) and item["seeds"] >= 2
        assert item["holds"] == (item["measured"] > 0 and item["measured"] > 2 * item["noise"]), item["claim"]


@pytest.mark.parametrize("name", STUDIES)
def test_each_lesson_rests_on_runs_past_counting_or_says_it_does_not(name):
    artefact = h.read_artefact(h.artefact_path(name, h.BUNDLED_ARTEFACTS_DIR))
    for item in artefact["results"]["lessons"]:
        counting = item["counting"]
        assert counting["below_bigram_by"] == pytest.approx(counting["bigram_loss"] - counting["runs_loss"])
        assert counting["below_best_by"] == pytest.approx(counting["best_count_loss"] - counting["runs_loss"])
        assert counting["past_bigram"] == (counting["runs_loss"] < counting["bigram_loss"])
        says_so = "first seconds" in item["claim"] or "not past counting" in item["claim"]
        assert counting["past_bigram"] or says_so, item["claim"]


def test_a_lesson_records_where_its_runs_stand_against_counting():
    counting = {"best_order": 4, "best": 4.4, "bigram": 4.7, "unigram": 6.3}
    past = h.lesson("A beats B", [0.5, 0.6], [4.5, 4.6], counting)["counting"]
    assert past["past_bigram"] and past["below_bigram_by"] == pytest.approx(0.1)
    assert past["below_best_by"] == pytest.approx(-0.2) and past["best_count_model"] == "4-gram counts"
    behind = h.lesson("A beats B", [0.5, 0.6], [4.5, 4.8], counting)
    assert not behind["counting"]["past_bigram"]
    assert "not yet past the bigram counts" in h.lesson_line(behind)
    slice_counting = {"best_order": 3, "best": 5.2, "bigram": 5.3, "unigram": 7.0}
    own_texts = h.lesson("More data beats less", [0.5, 0.6], [5.25, 4.6], [slice_counting, counting])["counting"]
    assert own_texts["past_bigram"] and own_texts["runs_loss"] == 5.25, "each run against its own text's counts"
    assert own_texts["below_bigram_by"] == pytest.approx(0.05) and own_texts["best_count_model"] == "3-gram counts"


def test_the_committed_cpu_studies_teach_at_least_fifteen_lessons_four_in_five_of_which_hold():
    artefacts = [h.read_artefact(h.artefact_path(name, h.BUNDLED_ARTEFACTS_DIR)) for name in STUDIES]
    if any(artefact["preset"] != "cpu" for artefact in artefacts):
        pytest.skip("the committed studies are not the cpu preset's (a make run on another preset rewrote them)")
    lessons = [item for artefact in artefacts for item in artefact["results"]["lessons"]]
    assert len(lessons) >= 15
    assert sum(item["holds"] for item in lessons) >= 0.8 * len(lessons)


def test_comparing_two_runs_of_the_studies_finds_a_verdict_that_changed(tmp_path):
    import subprocess
    import sys

    from conftest import ROOT

    def store(folder, effects):
        lessons = [h.lesson(f"claim {i}", values) for i, values in enumerate(effects)]
        h.write_artefact("overfitting", preset="quick", config={}, results={"lessons": lessons}, device="cpu",
                         folder=folder)

    store(tmp_path / "first", [[0.5, 0.52], [0.1, -0.1]])
    store(tmp_path / "same", [[0.4, 0.45], [0.2, -0.3]])
    store(tmp_path / "flipped", [[0.4, 0.45], [0.3, 0.31]])
    compare = [sys.executable, str(ROOT / "scripts" / "compare_lessons.py"), str(tmp_path / "first")]
    same = subprocess.run([*compare, str(tmp_path / "same")], capture_output=True, text=True)
    flipped = subprocess.run([*compare, str(tmp_path / "flipped")], capture_output=True, text=True)
    assert same.returncode == 0 and "2 of 2 lessons' verdicts reproduced" in same.stdout, same.stdout + same.stderr
    assert flipped.returncode == 1 and "DIFFERENT: overfitting: claim 1" in flipped.stdout


# ---------------------------------------------------------------- notebook 07: the best width for a budget of compute


def width_runs(losses: dict[tuple[float, int], tuple[float, float]]) -> list[dict]:
    """Two seeds' runs of the width study, {(flops, width): (loss seed 0, loss seed 1)}."""
    return [{"config": {"width": width, "flops": flops, "tokens": int(flops / width), "seed": seed,
                        "learning_rate": 0.01}, "status": "ok", "loss": loss, "tokens_per_s": 1000.0 / width}
            for (flops, width), pair in losses.items() for seed, loss in enumerate(pair)]


def test_the_best_width_grows_with_the_budget_and_the_widths_cross_between_two_budgets():
    counting = {"best_order": 4, "best": 4.4, "bigram": 4.7, "unigram": 6.3}
    runs = width_runs({(1e9, 8): (5.0, 5.02), (1e9, 16): (4.6, 4.61), (1e9, 32): (4.9, 4.92),
                       (4e9, 8): (4.8, 4.81), (4e9, 16): (4.5, 4.52), (4e9, 32): (4.45, 4.46), (4e9, 64): (4.6, 4.6),
                       (1.6e10, 16): (4.4, 4.41), (1.6e10, 32): (4.3, 4.31), (1.6e10, 64): (4.35, 4.36)})
    results = h.budget_lessons(runs, counting)
    assert results["best_widths"] == {"1e+09": 16, "4e+09": 32, "1.6e+10": 32}
    assert results["width_warnings"] == []
    assert 1e9 < results["crossing_flops"] < 4e9
    grows = [item for item in results["lessons"] if item["claim"].startswith("The best width grows")]
    assert len(grows) == 1 and grows[0]["holds"], "width 32 is behind at 1 GFLOP and ahead at 16 GFLOP"
    assert "width 32, behind width 16 at 1 GFLOP, is ahead at 16 GFLOP" in grows[0]["claim"]


def test_a_best_width_at_the_edge_of_those_tried_is_warned_of():
    counting = {"best_order": 4, "best": 4.4, "bigram": 4.7, "unigram": 6.3}
    runs = width_runs({(1e9, 16): (4.6, 4.6), (1e9, 32): (4.9, 4.9), (4e9, 16): (4.5, 4.5), (4e9, 32): (4.4, 4.4)})
    warnings = h.budget_lessons(runs, counting)["width_warnings"]
    assert len(warnings) == 2 and "1 GFLOP: the best width, 16, is the narrowest" in warnings[0]
    assert "4 GFLOP: the best width, 32, is the widest" in warnings[1]


def test_a_width_the_budget_would_train_past_its_cap_of_tokens_is_left_out():
    class Train:
        def tokens_for(self, flops, width):
            return int(flops / width)

    budget = h.HyperparameterBudget(widths=(8, 16, 32), budgets=(80, 320), learning_rates=(1e-3,), tuning_tokens=4,
                                    max_tokens=20, eval_tokens=None)
    configs = h.budget_configs(Train(), budget, {"8": 4e-3, "16": 2e-3, "32": 1e-3}, seeds=[0])
    assert [(config["flops"], config["width"], config["tokens"]) for config in configs] == \
        [(80, 8, 10), (80, 16, 5), (80, 32, 2), (320, 16, 20), (320, 32, 10)]
    assert budget.rates_for(32) == pytest.approx((2.5e-4,)), "each doubling of width halves the rates"


def test_the_committed_width_study_finds_each_best_inside_the_grid_tried_at_three_budgets_spanning_16x():
    study = h.read_artefact(h.artefact_path("hyperparameters", h.BUNDLED_ARTEFACTS_DIR))
    rates = h.read_artefact(h.artefact_path("hyperparameter_rates", h.BUNDLED_ARTEFACTS_DIR))
    budgets = sorted(float(flops) for flops in study["results"]["best_widths"])
    assert len(budgets) >= 3 and budgets[-1] / budgets[0] >= 16
    assert study["results"]["width_warnings"] == [] and study["config"]["rate_warnings"] == []
    assert rates["results"]["warnings"] == []
    table = h.by_budget(study["results"]["runs"])
    for flops, best in study["results"]["best_widths"].items():
        tried = sorted(table[float(flops)])
        assert tried[0] < best < tried[-1], f"{flops}: width {best} of {tried}"
