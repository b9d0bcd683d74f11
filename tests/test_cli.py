"""The command line: the course notes' sanity check, offline, and clear errors for bad input."""

import json
import os
import re
import subprocess
import sys
import time

import pytest

from conftest import ROOT

SANITY_CHECK = ["--tinystories_weight", "0.0", "--input_files", "3seqs.txt", "--block_size", "32",
                "--max_steps_per_epoch", "1", "--kgram_k", "2", "--embed_size", "64", "--device_id", "cpu"]


def pico_llm(*args, cwd=ROOT, timeout=120, env_extra=None):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", **(env_extra or {})}
    return subprocess.run([sys.executable, str(ROOT / "pico-llm.py"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_sanity_check_command_runs_offline_in_under_a_minute():
    started = time.perf_counter()
    result = pico_llm(*SANITY_CHECK)
    seconds = time.perf_counter() - started
    assert result.returncode == 0, result.stderr
    assert seconds < 60
    lstm = result.stdout.split("== lstm")[1]
    losses = [float(x) for x in re.findall(r"epoch \d: loss (\d+\.\d+)", lstm)]
    assert len(losses) == 3
    assert abs(losses[0] - 10.82) < 0.15
    assert losses[2] < losses[0]
    for setting in ("greedy", "top-p 0.95", "top-p 1.0"):
        assert re.search(rf"{re.escape(setting)}\s+'Once upon a", lstm), setting
    assert "Traceback" not in result.stderr


def test_sanity_check_is_reproducible():
    first, second = pico_llm(*SANITY_CHECK, "--models", "lstm"), pico_llm(*SANITY_CHECK, "--models", "lstm")
    strip_speed = lambda out: re.sub(r".*tokens/s.*\n", "", out)  # noqa: E731
    assert strip_speed(first.stdout) == strip_speed(second.stdout)


def test_runs_from_another_folder(tmp_path):
    result = pico_llm(*SANITY_CHECK, "--models", "lstm", cwd=tmp_path)
    assert result.returncode == 0, result.stderr


def test_cuda_request_falls_back_to_cpu_with_one_note():
    result = pico_llm(*[a if a != "cpu" else "cuda:0" for a in SANITY_CHECK], "--models", "lstm")
    assert result.returncode == 0
    if "CUDA is not available" not in result.stdout:
        pytest.skip("this machine has CUDA")
    assert result.stdout.count("CUDA is not available") == 1


@pytest.mark.parametrize("args, message", [
    (["--input_files", "no_such_file.txt", "--tinystories_weight", "0"], "no_such_file.txt' not found"),
    (["--input_files", "3seqs.txt", "--block_size", "1"], "block_size=1 is too small"),
    (["--input_dir", "no_such_folder", "--tinystories_weight", "0"], "no_such_folder' not found"),
    (["--tinystories_weight", "0"], "No training text"),
    (["--input_files", "3seqs.txt", "--tinystories_weight", "1.5"], "tinystories_weight=1.5"),
])
def test_bad_input_gives_one_clear_line(args, message):
    result = pico_llm(*args, "--device_id", "cpu", "--models", "lstm")
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error:")


def test_help_explains_every_flag():
    result = pico_llm("--help")
    assert result.returncode == 0
    flags = set(re.findall(r"(--\w+)", result.stdout))
    for flag in ["--input_files", "--tinystories_weight", "--max_steps_per_epoch", "--num_inner_mlp_layers",
                 "--kgram_k", "--kgram_chunk_size", "--block_size", "--embed_size", "--prompt", "--device_id",
                 "--input_dir", "--limit_custom_examples", "--tinystories_path", "--num_epochs", "--batch_size",
                 "--learning_rate", "--seed", "--test_fraction", "--models"]:
        assert flag in flags, flag


def test_kgram_variant_compare_writes_the_comparison(tmp_path):
    result = pico_llm("--tinystories_weight", "0.0", "--input_files", "3seqs.txt", "--block_size", "16",
                      "--kgram_k", "2", "--embed_size", "16", "--batch_size", "2", "--device_id", "cpu",
                      "--models", "kgram", "--kgram_variant", "compare", "--num_epochs", "1",
                      "--max_steps_per_epoch", "3", env_extra={"PICOLLM_ARTEFACTS_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert "starter's loop" in result.stdout and (tmp_path / "kgram_comparison.json").is_file()


def test_collect_transformer_metrics_writes_every_preset(tmp_path):
    result = pico_llm("--tinystories_weight", "0.0", "--input_files", "3seqs.txt", "--block_size", "16",
                      "--batch_size", "2", "--device_id", "cpu", "--collect_transformer_metrics", "--preset", "quick",
                      "--num_epochs", "1", "--max_steps_per_epoch", "2", env_extra={"PICOLLM_ARTEFACTS_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "transformer_metrics.json").read_text())
    assert set(metrics["results"]["cache"]) == {"minGPT", "GPT2-small", "GPT-oss", "Llama3-lite"}
    assert all(cache["same_tokens"] for cache in metrics["results"]["cache"].values())


def test_custom_sweep_log_writes_the_sweep_where_asked(tmp_path):
    log = tmp_path / "sweep.json"
    result = pico_llm("--input_dir", "data/custom_corpus", "--tinystories_weight", "0.0", "--preset", "quick",
                      "--device_id", "cpu", "--custom_sweep_log", str(log),
                      env_extra={"PICOLLM_ARTEFACTS_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    runs = json.loads(log.read_text())["results"]["runs"]
    assert {run["config"]["sequences"] for run in runs} == {3, 63, 123, 185}
