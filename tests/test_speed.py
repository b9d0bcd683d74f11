"""Learning speed and where the compute goes: the benchmark's machinery on small runs, the committed
artefacts' floors, the step breakdown, and a Transformer on the cpu preset that writes English."""

import importlib.util
import json
from dataclasses import replace

import pytest

import picollm_helpers as h
from conftest import ROOT
from picollm_helpers.cli import command_line_run

REAL_TEXT = importlib.util.spec_from_file_location("real_text", ROOT / "benchmarks" / "real_text.py")
real_text = importlib.util.module_from_spec(REAL_TEXT)
REAL_TEXT.loader.exec_module(real_text)

TINY = h.TransformerConfig(d_model=16, n_heads=2, n_blocks=1, d_ff=32, norm="layernorm", max_seq_len=16)


def test_the_benchmark_measures_every_way_on_the_same_heldout_windows(tmp_path, enc):
    train, heldouts = tmp_path / "train.txt", [tmp_path / "heldout_a.txt", tmp_path / "heldout_b.txt"]
    train.write_text("".join(f"The ship {i} sailed at dawn with {i % 7} crates.\n" for i in range(300)))
    heldouts[0].write_text("".join(f"The boat {i} came home at dusk.\n" for i in range(40)))
    heldouts[1].write_text("".join(f"A cart {i} rolled into town.\n" for i in range(40)))
    command_line = command_line_run(["--models", "transformer", "--transformer_variant", "minGPT", "--d_model", "16",
                                     "--n_heads", "2", "--n_blocks", "1", "--block_size", "16", "--train_seconds", "1",
                                     "--device_id", "cpu"])
    assert command_line.vocab == "corpus" and command_line.min_count == "auto", "the CPU's defaults"
    ways = h.benchmark_runs(TINY, command_line)
    assert [way.label for way in ways if way.compile] == [h.COMMAND_LINE_COMPILED]
    uncompiled = [way for way in ways if not way.compile]  # compiling takes seconds; tests/test_gpu_path.py tests it
    benchmark = h.SpeedBenchmark((train,), tuple(heldouts), TINY, train_seconds=0.5, eval_every_seconds=0.25,
                                 batch_size=4, block_size=16, max_new_tokens=5, warm_up_seconds=0.2)
    artefact = h.learning_speed(benchmark, uncompiled, enc=enc, device="cpu", path=tmp_path / "speed.json")
    runs = artefact["results"]["runs"]
    assert set(runs) == {h.STARTER_WAY, h.PACKED_FULL, h.PACKED_COMPACT, h.PRESET_TRANSFORMER, h.COMMAND_LINE,
                         h.REFERENCE}
    assert [record["sha256"] for record in artefact["config"]["heldout_files"]] == \
        [h.file_record(file)["sha256"] for file in heldouts]
    for run in runs.values():
        assert set(run["curves"]) == {"heldout_a.txt", "heldout_b.txt"}
        for curve in run["curves"].values():
            assert len(curve) >= 2 and curve[-1][0] >= 0.5 and 0 < curve[-1][2] < curve[-1][1]
        assert set(run["samples"]) == {"greedy", "p = 0.8"}
    assert "corpus (" in runs[h.COMMAND_LINE]["vocabulary"] and "gpt2" in runs[h.REFERENCE]["vocabulary"]
    table = h.learning_speed_table(artefact)
    assert list(table.columns[:3]) == ["held-out loss at 30 s", "held-out loss at 60 s", "held-out loss at 120 s"]
    assert set(h.learning_speed_floors(artefact)) >= {"packed_floor_met", "compact_floor_met", "defaults_floor_met"}


def benchmark_main(script: str, monkeypatch):
    """A benchmark's main(), run in this process (as `python benchmarks/<script>.py` runs it)."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    return importlib.import_module(script).main


def test_a_missing_benchmark_file_is_one_clear_error(tmp_path, monkeypatch, capsys):
    status = benchmark_main("learning_speed", monkeypatch)(["--train_files", str(tmp_path / "missing.txt"),
                                                            "--heldout_files", str(tmp_path / "also.txt")])
    stderr = capsys.readouterr().err
    assert status == 2 and "missing.txt not found" in stderr and "Traceback" not in stderr


def test_the_committed_learning_speed_artefact_meets_the_floors():
    """The benchmark as committed (two CPU cores, the plays, both held-out works): packed streams and the recipe
    beat the starter's way, a compact head beats the full one, and the command line's defaults end at least 0.5
    nats per token below the reference recipe on the same model on every held-out work, on average over the
    seeds, each gap larger than twice its seed-to-seed noise."""
    artefact = json.loads((ROOT / "artefacts" / "learning_speed.json").read_text())
    assert artefact["config"]["train_seconds"] == 120
    assert {record["name"] for record in artefact["config"]["heldout_files"]} == {"winters_tale.txt", "henry_viii.txt"}
    floors = h.learning_speed_floors(artefact)
    assert floors["packed_loss_gain"] >= 1.5 and floors["packed_speed_ratio"] >= 1.0
    assert floors["compact_loss_gain"] >= 0.3 and floors["compact_speed_ratio"] >= 3.0
    assert floors["defaults_floor_met"], floors["defaults_loss_gain"]
    assert all(seeds >= 2 and gain > 2 * noise for gain, noise, seeds in h.defaults_gains(artefact).values())


def test_the_defaults_gain_over_the_reference_is_paired_by_seed_and_carries_its_noise():
    def run(finals: dict) -> dict:
        return {"curves": {"a.txt": [], "b.txt": []},
                "by_seed": [{"seed": seed, "final_loss": final} for seed, final in finals.items()]}

    artefact = {"results": {"runs": {
        h.COMMAND_LINE: run({0: {"a.txt": 4.0, "b.txt": 5.0}, 1: {"a.txt": 4.2, "b.txt": 5.0}}),
        h.REFERENCE: run({0: {"a.txt": 4.6, "b.txt": 5.5}, 1: {"a.txt": 4.6, "b.txt": 5.7},
                          2: {"a.txt": 9.0, "b.txt": 9.0}})}}}  # a seed the defaults lack is left out
    gains = h.defaults_gains(artefact)
    assert gains["a.txt"] == pytest.approx((0.5, 0.1 * 2 ** 0.5, 2))
    assert gains["b.txt"] == pytest.approx((0.6, 0.1 * 2 ** 0.5, 2))


def test_the_recipe_sweep_names_the_command_lines_defaults_and_every_choice_beside_them():
    artefact = json.loads((ROOT / "artefacts" / "recipe_sweep.json").read_text())
    runs = artefact["results"]["runs"]
    assert {"the defaults", "full head (all 50,257 ids)", "min_count 32", "torch.compile"} <= set(runs)
    defaults = replace(real_text.command_line_defaults(artefact["config"]["train_seconds"], "cpu"), label="the defaults")
    assert artefact["config"]["runs"]["the defaults"] == json.loads(json.dumps(h.speed_run_config(defaults)))
    assert all(gain > 0 for gain in h.prior_effect(runs["the defaults"]).values()), "the plays prior is the default"


def sweep_artefact(created: str, commit: str, labels: list[str], seconds: float = 60.0) -> dict:
    return {"name": "recipe_sweep", "created": created, "git_commit": commit,
            "config": {"train_seconds": seconds, "seeds": [0, 1], "threads": 2, "runs": {label: {} for label in labels}},
            "results": {"runs": {label: {"made": created} for label in labels}}}


def test_rows_measured_again_replace_theirs_and_keep_when_each_was_measured():
    previous = sweep_artefact("2026-01-01", "aaaaaaa", ["the defaults", "batch 16"])
    fresh = sweep_artefact("2026-01-02", "bbbbbbb", ["the defaults"])
    config, results = h.with_runs_measured_again(previous, fresh)
    assert results["runs"] == {"the defaults": {"made": "2026-01-02"}, "batch 16": {"made": "2026-01-01"}}
    assert results["measured"]["the defaults"] == {"created": "2026-01-02", "git_commit": "bbbbbbb"}
    assert results["measured"]["batch 16"] == {"created": "2026-01-01", "git_commit": "aaaaaaa"}
    assert set(config["runs"]) == {"the defaults", "batch 16"}
    with pytest.raises(h.InputError, match="train_seconds"):
        h.with_runs_measured_again(previous, sweep_artefact("2026-01-02", "bbbbbbb", ["batch 16"], seconds=30.0))


def test_remeasuring_a_row_the_sweep_does_not_have_is_one_clear_error(tmp_path, monkeypatch, capsys):
    status = benchmark_main("recipe_defaults", monkeypatch)(["--remeasure", "bogus", "--output",
                                                             str(tmp_path / "sweep.json")])
    stderr = capsys.readouterr().err
    assert status == 2 and "No row named 'bogus'" in stderr and "Traceback" not in stderr
    assert not (tmp_path / "sweep.json").exists()


def test_the_committed_fused_loss_artefact_backs_the_cpu_default():
    """The CPU trains with the fused loss: never slower than the plain path beyond the measurement's noise (5%),
    and where a batch has more positions than a chunk, faster and in less than half the memory."""
    artefact = json.loads((ROOT / "artefacts" / "fused_loss.json").read_text())
    assert artefact["device"].startswith("cpu") and h.FUSED_LOSS_BY_DEVICE["cpu"]
    rows = {(row["d_model"], row["tokens_per_step"], row["fused"]): row for row in artefact["results"]["rows"]}
    cases = {(width, tokens) for width, tokens, _ in rows}
    assert {128, 512} <= {width for width, _ in cases}
    for width, tokens in cases:
        fused, plain = rows[(width, tokens, True)], rows[(width, tokens, False)]
        assert fused["tokens_per_s"] >= 0.95 * plain["tokens_per_s"], (width, tokens)
        if tokens > artefact["config"]["chunk_rows"]:
            assert fused["tokens_per_s"] > plain["tokens_per_s"]
            assert fused["peak_memory_mb"] < 0.5 * plain["peak_memory_mb"]


def test_step_breakdown_splits_a_step_into_its_parts():
    full = h.step_breakdown(TINY, device="cpu", batch_size=2, block_size=8, profiled_steps=1)
    compact = h.step_breakdown(TINY, device="cpu", vocab_ids=list(range(500)), batch_size=2, block_size=8,
                               profiled_steps=1)
    assert set(full["parts"]) == set(h.STEP_PARTS)
    assert sum(part["share"] for part in full["parts"].values()) == pytest.approx(1.0)
    assert full["parts"]["output head"]["flops_per_token"] == 6 * 16 * 50257
    assert compact["parts"]["output head"]["flops_per_token"] == 6 * 16 * 501
    assert full["parts"]["output head"]["ms"] > compact["parts"]["output head"]["ms"]


def test_the_committed_writer_writes_what_it_never_read():
    """The cpu preset's writer (notebook 03) as committed: at most 4.7 nats/token on the standard held-out work, at
    most 10% of the 8-word spans of its sampled continuations found in a text in data/, at least 90% words."""
    writer = json.loads((ROOT / "artefacts" / "writer.json").read_text())
    if writer["preset"] != "cpu":
        pytest.skip(f"the committed writer is the {writer['preset']} preset's (a make run on it rewrote it)")
    results = writer["results"]
    assert writer["config"]["heldout"] == ["winters_tale.txt"] and results["heldout_loss"] <= 4.7
    assert results["sampled"]["settings"] == ["p = 0.5", "p = 1.0"] and results["sampled"]["samples"] >= 20
    assert results["sampled"]["copied_span_share"] <= 0.10 and results["sampled"]["word_share"] >= 0.90
    assert all(sample.startswith(tuple(writer["config"]["prompts"]))
               for setting in results["writing"].values() for sample in setting["samples"])


def test_copied_spans_are_measured_on_the_continuation_alone():
    """A sample that recites its training text scores 1, one of new sentences 0; the prompt never counts."""
    play = h.read_text_file(h.PLAYS_DIR / "tempest.txt")
    recited = " ".join(h.words_of(play)[500:530])
    assert h.copied_span_share([recited]) == 1.0
    assert h.copied_span_share(["my own words here are new and nobody wrote these very lines before today"]) == 0.0


def test_a_row_of_the_sweep_beats_the_defaults_only_beyond_twice_its_noise():
    def row(*losses):
        return {"by_seed": [{"seed": seed, "final_loss": {"a.txt": loss, "b.txt": loss}}
                            for seed, loss in enumerate(losses)]}

    artefact = {"results": {"runs": {"the defaults": row(5.0, 5.1), "steady": row(4.8, 4.9), "noisy": row(4.7, 5.2)}}}
    steady, noisy = h.recipe_lessons(artefact)
    assert steady["holds"] and steady["measured"] == pytest.approx(0.2) and steady["claim"].startswith("steady")
    assert not noisy["holds"] and noisy["seeds"] == 2
