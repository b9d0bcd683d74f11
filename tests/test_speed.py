"""Learning speed and where the compute goes: the benchmark's machinery on small runs, the committed
artefacts' floors, the step breakdown, and a Transformer on the cpu preset that writes English."""

import json
import re
import subprocess
import sys

import pytest

import picollm_helpers as h
from conftest import ROOT

TINY = h.TransformerConfig(d_model=16, n_heads=2, n_blocks=1, d_ff=32, norm="layernorm", max_seq_len=16)


def test_the_benchmark_measures_every_way_on_the_same_heldout_windows(tmp_path, enc):
    train, heldout = tmp_path / "train.txt", tmp_path / "heldout.txt"
    train.write_text("".join(f"The ship {i} sailed at dawn with {i % 7} crates.\n" for i in range(300)))
    heldout.write_text("".join(f"The boat {i} came home at dusk.\n" for i in range(40)))
    artefact = h.learning_speed(train, heldout, h.benchmark_runs(), model=TINY, enc=enc, device="cpu",
                                train_seconds=1.0, eval_every_seconds=0.5, block_size=16, batch_size=4,
                                max_new_tokens=5, path=tmp_path / "speed.json")
    runs = artefact["results"]["runs"]
    assert set(runs) == {h.STARTER_WAY, h.PACKED_FULL, h.PACKED_COMPACT}
    assert artefact["config"]["heldout_file"]["sha256"] == h.file_record(heldout)["sha256"]
    for run in runs.values():
        assert len(run["curve"]) >= 2 and run["curve"][-1][0] >= 1.0
        assert set(run["samples"]) == {"greedy", "p = 0.8"}
    assert "corpus (" in runs[h.PACKED_COMPACT]["vocabulary"] and "gpt2" in runs[h.PACKED_FULL]["vocabulary"]
    table = h.learning_speed_table(artefact)
    assert list(table.columns[:3]) == ["held-out loss at 30 s", "held-out loss at 60 s", "held-out loss at 120 s"]
    assert set(h.learning_speed_floors(artefact)) >= {"packed_floor_met", "compact_floor_met"}


def test_a_missing_benchmark_file_is_one_clear_error(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "learning_speed.py"), "--train_file",
                             str(tmp_path / "missing.txt"), "--heldout_file", str(tmp_path / "also.txt")],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "missing.txt not found" in result.stderr and "Traceback" not in result.stderr


def test_the_committed_learning_speed_artefact_meets_the_floors():
    """The benchmark as committed (two CPU cores, the shared real text): the floors of issues 10 and 11."""
    artefact = json.loads((ROOT / "artefacts" / "learning_speed.json").read_text())
    assert artefact["config"]["train_seconds"] == 120 and artefact["config"]["heldout_file"]["name"] == \
        "winters_tale_heldout.txt"
    floors = h.learning_speed_floors(artefact)
    assert floors["packed_loss_gain"] >= 1.5 and floors["packed_speed_ratio"] >= 1.0
    assert floors["compact_loss_gain"] >= 0.3 and floors["compact_speed_ratio"] >= 3.0


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


def test_on_the_cpu_preset_the_writer_writes_english_and_varies(enc, tmp_path, monkeypatch):
    """Notebook 03's Transformer that writes, as the cpu preset trains it offline (the custom corpus): its greedy
    and p = 0.5 continuations of "Once upon a" are at least 90% words of Debian's word list, and p = 1.0 varies."""
    if not h.WORD_LIST.is_file():
        pytest.skip(f"no word list at {h.WORD_LIST}: `apt-get install wamerican` (.ci/run does)")
    monkeypatch.setattr(h.experiments, "ARTEFACTS_DIR", tmp_path)
    writer = h.train_writer(enc, h.get_run_preset("cpu"), device="cpu", seed=0)
    writing = writer["results"]["writing"]
    assert "wamerican" in writer["config"]["word_list"]
    for setting in ("greedy", "p = 0.5"):
        for text in writing[setting]["samples"]:
            assert h.word_share(text[len("Once upon a"):], h.english_words()) >= 0.9, text
    assert writing["p = 1.0"]["distinct_samples"] >= 4, writing["p = 1.0"]["samples"]
    assert re.match(r"Once upon a", writing["greedy"]["samples"][0])
