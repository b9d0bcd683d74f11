"""The command line: the course notes' sanity check, real text with a time budget, and a clear error for every bad flag."""

import contextlib
import io
import json
import os
import re
import subprocess
import sys
import time

import pytest

import picollm_helpers as h
from conftest import ROOT, SHARED_REAL_TEXT
from picollm_helpers import cli

SANITY_CHECK = ["--tinystories_weight", "0.0", "--input_files", "3seqs.txt", "--block_size", "32",
                "--max_steps_per_epoch", "1", "--kgram_k", "2", "--embed_size", "64", "--device_id", "cpu"]


def pico_llm(*args, cwd=ROOT, timeout=120):
    """pico-llm.py in a new Python, as a user types it (OMP_NUM_THREADS=1, as the course notes run it)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, str(ROOT / "pico-llm.py"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def pico_llm_here(*args, artefacts=None, monkeypatch=None):
    """The same command line run in this process, through the main() that pico-llm.py calls: what it prints
    and its exit status, without the seconds a new Python spends importing torch. `artefacts`: the folder
    its artefacts go to (in place of $PICOLLM_ARTEFACTS_DIR, which a process reads once)."""
    if artefacts is not None:
        monkeypatch.setattr(h.artefacts, "ARTEFACTS_DIR", artefacts)
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            status = cli.main(list(args))
        except SystemExit as exit_:  # --help, and argparse's own errors
            status = exit_.code
    return subprocess.CompletedProcess(["pico-llm.py", *args], status, stdout.getvalue(), stderr.getvalue())


@pytest.fixture(scope="module")
def sanity_check():
    """The course notes' sanity check as a user runs it, and its seconds."""
    started = time.perf_counter()
    result = pico_llm(*SANITY_CHECK)
    return result, time.perf_counter() - started


def test_sanity_check_command_prints_the_notes_losses_offline_in_under_15_seconds(sanity_check):
    result, seconds = sanity_check
    assert result.returncode == 0, result.stderr
    assert seconds < 15
    lstm = result.stdout.split("== lstm")[1]
    losses = [float(x) for x in re.findall(r"epoch \d: loss (\d+\.\d+)", lstm)]
    assert [f"{loss:.2f}" for loss in losses] == ["10.83", "10.81", "10.78"], "the losses the notes' run printed"
    for setting in ("greedy", "top-p 0.95", "top-p 1.0"):
        assert re.search(rf"{re.escape(setting)}\s+'Once upon a", lstm), setting
    assert "Traceback" not in result.stderr


def test_sanity_check_is_reproducible_in_a_new_process_from_another_folder(sanity_check, tmp_path):
    first, second = sanity_check[0], pico_llm(*SANITY_CHECK, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    strip_speed = lambda out: re.sub(r".*tokens/s.*\n", "", out)  # noqa: E731
    assert strip_speed(first.stdout) == strip_speed(second.stdout)


def test_cuda_request_falls_back_to_cpu_with_one_note():
    result = pico_llm_here(*[a if a != "cpu" else "cuda:0" for a in SANITY_CHECK], "--models", "lstm")
    assert result.returncode == 0
    if "CUDA is not available" not in result.stdout:
        pytest.skip("this machine has CUDA")
    assert result.stdout.count("CUDA is not available") == 1


BAD_FLAGS = [
    (["--input_files", "no_such_file.txt"], "no_such_file.txt' not found"),
    (["--input_files", "3seqs.txt", "--block_size", "1"], "--block_size 1 is too small"),
    (["--input_dir", "no_such_folder"], "no_such_folder' not found"),
    (["--eval_files", "missing_heldout.txt", "--input_files", "3seqs.txt"], "missing_heldout.txt' not found"),
    ([], "No training text"),
    (["--input_files", "3seqs.txt", "--tinystories_weight", "1.5"], "--tinystories_weight 1.5"),
    (["--input_files", "3seqs.txt", "--learning_rate", "0"], "--learning_rate"),
    (["--input_files", "3seqs.txt", "--learning_rate", "-1"], "--learning_rate"),
    (["--input_files", "3seqs.txt", "--train_seconds", "0"], "--train_seconds 0"),
    (["--input_files", "3seqs.txt", "--train_seconds", "-5"], "--train_seconds -5"),
    (["--input_files", "3seqs.txt", "--max_steps", "10", "--warmup_steps", "20"], "--warmup_steps 20"),
    (["--input_files", "3seqs.txt", "--max_steps", "5", "--train_seconds", "5"], "--max_steps and --train_seconds"),
    (["--input_files", "3seqs.txt", "--max_steps", "0"], "--max_steps 0"),
    (["--input_files", "3seqs.txt", "--batch_size", "0"], "--batch_size 0"),
    (["--input_files", "3seqs.txt", "--weight_decay", "-0.1"], "--weight_decay"),
    (["--input_files", "3seqs.txt", "--grad_clip", "-1"], "--grad_clip -1"),
    (["--input_files", "3seqs.txt", "--min_count", "0"], "--min_count 0"),
    (["--input_files", "3seqs.txt", "--prompt", ""], "--prompt is empty"),
    (["--input_files", "3seqs.txt", "--test_fraction", "1"], "--test_fraction 1"),
    (["--input_files", "3seqs.txt", "--d_model", "100", "--n_heads", "3", "--models", "transformer"], "n_heads=3"),
    (["--input_files", "3seqs.txt", "--max_steps_per_epoch", "1", "--packing", "on"], "--packing on"),
    (["--input_files", "3seqs.txt", "--max_steps_per_epoch", "1", "--max_steps", "3"], "give one kind"),
    (["--input_files", "3seqs.txt", "--block_size", "5000", "--max_steps", "1"], "or smaller"),
    (["--rerun", "no_such_run.json"], "--rerun no_such_run.json: no such file"),
    (["--rerun", "pyproject.toml"], "--rerun pyproject.toml cannot be read as JSON"),
    (["--rerun", "notebooks/01_sanity_check.ipynb"], "records no run's flags"),
    (["--rerun", "artefacts/notebook_times_cpu.json"], "notebook_times_cpu is not a study whose runs"),
    (["--rerun", "artefacts/overfitting.json"], "holds 8 runs (listed above); choose one with --run N"),
    (["--rerun", "artefacts/overfitting.json", "--run", "8"], "--run 8 is not one of them"),
    (["--rerun", "artefacts/kgram_comparison.json", "--run", "0"], "is not a study whose runs can be trained again"),
]


@pytest.mark.parametrize("args, message", BAD_FLAGS, ids=[message for _, message in BAD_FLAGS])
def test_every_bad_flag_gives_one_clear_line_and_writes_nothing(args, message, tmp_path, monkeypatch):
    outputs = ["--save_checkpoint", str(tmp_path / "run.pt"), "--metrics_json", str(tmp_path / "run.json")]
    result = pico_llm_here("--tinystories_weight", "0", *args, "--device_id", "cpu", "--models", "lstm", *outputs,
                           artefacts=tmp_path / "artefacts", monkeypatch=monkeypatch)
    assert result.returncode == 2, result.stdout
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error:")
    assert list(tmp_path.iterdir()) == [], "nothing written"


def test_help_explains_every_flag():
    result = pico_llm_here("--help")
    assert result.returncode == 0
    flags = set(re.findall(r"(--\w+)", result.stdout))
    for flag in ["--input_files", "--tinystories_weight", "--max_steps_per_epoch", "--num_inner_mlp_layers",
                 "--kgram_k", "--kgram_chunk_size", "--block_size", "--embed_size", "--prompt", "--device_id",
                 "--input_dir", "--limit_custom_examples", "--tinystories_path", "--num_epochs", "--batch_size",
                 "--learning_rate", "--seed", "--test_fraction", "--models", "--save_checkpoint", "--checkpoint_every",
                 "--resume"]:
        assert flag in flags, flag


def test_every_flag_is_declared_once_beside_the_field_it_sets():
    parser, given_nothing = cli.build_parser(), cli.build_parser().parse_args([])
    declared = cli.declared_flags()
    names = [name for _, flag in declared for name in flag["names"]]
    assert len(names) == len(set(names)), "a flag declared twice"
    assert {action.dest for action in parser._actions} - {"help"} == {flag["names"][0][2:] for _, flag in declared}
    for item, flag in declared:
        dest = flag["names"][0][2:]
        expected = item.default if flag["default"] == h.FIELD_DEFAULT else flag["default"]
        assert getattr(given_nothing, dest) == expected, dest
    assert given_nothing.base_weight == h.TrainingText().base_weight and given_nothing.kgram_k == h.KGramConfig().k
    assert given_nothing.grad_accum_steps == h.Arithmetic().grad_accum_steps
    assert "Not given: 0.002 (0.001 in an epoch run, the starter's)" in " ".join(parser.format_help().split())


def test_kgram_variant_compare_writes_the_comparison(tmp_path, monkeypatch):
    result = pico_llm_here("--tinystories_weight", "0.0", "--input_files", "3seqs.txt", "--block_size", "16",
                           "--kgram_k", "2", "--embed_size", "16", "--batch_size", "2", "--device_id", "cpu",
                           "--models", "kgram", "--kgram_variant", "compare", "--num_epochs", "1",
                           "--max_steps_per_epoch", "3", artefacts=tmp_path, monkeypatch=monkeypatch)
    assert result.returncode == 0, result.stderr
    assert "starter's loop" in result.stdout and (tmp_path / "kgram_comparison.json").is_file()


def test_collect_transformer_metrics_writes_every_preset(tmp_path, monkeypatch):
    result = pico_llm_here("--tinystories_weight", "0.0", "--input_files", "3seqs.txt", "--block_size", "16",
                           "--batch_size", "2", "--device_id", "cpu", "--collect_transformer_metrics",
                           "--preset", "quick", "--vocab", "corpus", "--num_epochs", "1", "--max_steps_per_epoch", "2",
                           artefacts=tmp_path, monkeypatch=monkeypatch)
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "transformer_metrics.json").read_text())
    assert set(metrics["results"]["cache"]) == {"minGPT", "GPT2-small", "GPT-oss", "Llama3-lite"}
    assert all(cache["same_tokens"] for cache in metrics["results"]["cache"].values())


def test_custom_sweep_log_writes_the_sweep_where_asked(tmp_path, monkeypatch):
    log = tmp_path / "sweep.json"
    result = pico_llm_here("--input_dir", "data/custom_corpus", "--tinystories_weight", "0.0", "--preset", "quick",
                           "--device_id", "cpu", "--custom_sweep_log", str(log),
                           artefacts=tmp_path, monkeypatch=monkeypatch)
    assert result.returncode == 0, result.stderr
    runs = json.loads(log.read_text())["results"]["runs"]
    assert {run["config"]["sequences"] for run in runs} == {3, 63, 123, 185}


@pytest.mark.skipif(not SHARED_REAL_TEXT.is_dir(), reason=f"real text not present at {SHARED_REAL_TEXT}")
def test_real_text_with_a_time_budget_checkpoint_and_metrics(tmp_path, monkeypatch):
    """The issue's command, from another folder, with the files anywhere, on a few seconds' budget."""
    monkeypatch.chdir(tmp_path)
    result = pico_llm_here("--input_files", str(SHARED_REAL_TEXT / "comedies_train.txt"),
                           "--eval_files", str(SHARED_REAL_TEXT / "winters_tale_heldout.txt"),
                           "--tinystories_weight", "0",
                           "--models", "transformer", "--transformer_variant", "minGPT", "--d_model", "128",
                           "--n_blocks", "4", "--n_heads", "4", "--block_size", "64", "--train_seconds", "4",
                           "--device_id", "cpu", "--save_checkpoint", "run.pt", "--metrics_json", "run.json")
    assert result.returncode == 0, result.stderr
    heldout = float(re.search(r"held-out loss: (\d+\.\d+) nats/token", result.stdout).group(1))
    assert 4.0 < heldout < 10.9
    metrics = json.loads((tmp_path / "run.json").read_text())
    for key in ("heldout_loss", "train_loss", "steps", "tokens_seen", "tokens_per_s", "train_seconds", "samples",
                "config", "git_commit", "created"):
        assert key in metrics, key
    assert metrics["heldout_loss"] == pytest.approx(heldout, abs=1e-4)
    assert 4.0 <= metrics["train_seconds"] < 8.0 and metrics["config"]["packed"] is True
    model = h.load_checkpoint(tmp_path / "run.pt")
    assert model.settings.d_model == 128 and model.settings.n_blocks == 4


def test_compact_vocabulary_from_the_command_line(tmp_path):
    result = pico_llm_here("--input_dir", "data/custom_corpus", "--tinystories_weight", "0", "--models", "lstm",
                           "--embed_size", "32", "--block_size", "32", "--max_steps", "3", "--vocab", "corpus",
                           "--test_fraction", "0.2", "--device_id", "cpu", "--metrics_json", str(tmp_path / "m.json"))
    assert result.returncode == 0, result.stderr
    assert "vocabulary corpus (" in result.stdout
    assert json.loads((tmp_path / "m.json").read_text())["heldout_loss"] > 0


def test_out_of_the_box_a_packed_run_trains_on_the_plays_and_reports_the_standard_heldout_work(tmp_path):
    """No data flags: the base corpus (the plays); on the CPU a compact head (min_count auto) and batches of 8; the
    held-out loss on The Winter's Tale, in nats per token and bits per character, in the metrics too."""
    result = pico_llm_here("--models", "transformer", "--transformer_variant", "minGPT", "--d_model", "32", "--n_heads",
                           "2", "--n_blocks", "1", "--block_size", "32", "--max_steps", "3", "--device_id", "cpu",
                           "--metrics_json", str(tmp_path / "run.json"))
    assert result.returncode == 0, result.stderr
    held = re.search(r"held-out loss: (\d+\.\d+) nats/token, (\d+\.\d+) bits/character \(.*winters_tale\.txt",
                     result.stdout)
    assert held and 0 < float(held.group(2)) < float(held.group(1))
    metrics = json.loads((tmp_path / "run.json").read_text())
    assert metrics["config"]["batch_size"] == 8 and metrics["model"]["vocabulary"].startswith("corpus (")
    assert metrics["heldout_bits_per_char"] == pytest.approx(float(held.group(2)), abs=1e-4)
    assert "the plays" in result.stdout


def test_an_unwritable_checkpoint_path_is_found_before_training(tmp_path, monkeypatch):
    result = pico_llm_here("--tinystories_weight", "0", "--input_files", "3seqs.txt", "--device_id", "cpu",
                           "--models", "lstm", "--max_steps", "2", "--save_checkpoint", "/proc/x.pt",
                           artefacts=tmp_path / "artefacts", monkeypatch=monkeypatch)
    assert result.returncode == 2, result.stdout
    assert "--save_checkpoint /proc/x.pt: cannot write there" in result.stderr
    assert "free some space" not in result.stderr and "Traceback" not in result.stderr
    assert "parameters" not in result.stdout, "no model was built, nothing trained"


def test_a_run_says_what_it_trained_on_when_tinystories_is_out_of_reach(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = pico_llm_here("--base_corpus", "tinystories", "--models", "transformer", "--d_model", "32",
                           "--n_heads", "2", "--n_blocks", "1", "--block_size", "32", "--max_steps", "2",
                           "--device_id", "cpu", "--counts", "off", artefacts=tmp_path / "artefacts",
                           monkeypatch=monkeypatch)
    assert result.returncode == 0, result.stderr
    assert "TinyStories skipped" in result.stderr + result.stdout
    assert re.search(r"[\d,]+ training tokens of the plays, packed", result.stdout), result.stdout
    assert "training tokens of TinyStories" not in result.stdout


def test_a_run_budgeted_in_seconds_is_trained_again_from_its_metrics_to_the_same_losses(tmp_path, monkeypatch):
    """--rerun: the flags a metrics file recorded (the command's other flags ignored, but for its outputs), and the
    steps a run budgeted in seconds took, at the learning rates it took them at: the same losses to 1e-6 however
    long the steps take this time, the same samples, and a record that can be replayed in its turn."""
    recorded, replayed, again = tmp_path / "recorded.json", tmp_path / "replayed.json", tmp_path / "again.json"
    flags = ["--models", "transformer", "--transformer_variant", "minGPT", "--d_model", "32", "--n_heads", "2",
             "--n_blocks", "1", "--block_size", "32", "--train_seconds", "2", "--device_id", "cpu", "--counts", "off"]
    first = pico_llm_here(*flags, "--metrics_json", str(recorded), artefacts=tmp_path / "a", monkeypatch=monkeypatch)
    assert first.returncode == 0, first.stderr
    second = pico_llm_here("--rerun", str(recorded), "--max_steps", "1", "--metrics_json", str(replayed),
                           artefacts=tmp_path / "a", monkeypatch=monkeypatch)
    assert second.returncode == 0, second.stderr
    assert f"training again the run recorded in {recorded}" in second.stdout
    third = pico_llm_here("--rerun", str(replayed), "--metrics_json", str(again), artefacts=tmp_path / "a",
                          monkeypatch=monkeypatch)
    assert third.returncode == 0, third.stderr
    runs = [json.loads(path.read_text()) for path in (recorded, replayed, again)]
    assert runs[0]["steps"] == len(runs[0]["learning_rates"]) > 2
    for run in runs[1:]:
        assert run["steps"] == runs[0]["steps"] and run["learning_rates"] == runs[0]["learning_rates"]
        for key in ("train_loss", "heldout_loss", "heldout_bits_per_char"):
            assert run[key] == pytest.approx(runs[0][key], abs=1e-6), key
        assert run["samples"] == runs[0]["samples"]


@pytest.fixture(scope="module")
def quick_studies(tmp_path_factory):
    """The quick overfitting study and race, one seed, written to a folder of their own."""
    folder = tmp_path_factory.mktemp("studies")
    enc, run, cpu = h.get_tokenizer(), h.get_run_preset("quick"), h.pick_device("cpu")
    for plan in (h.overfitting_plan(enc, run, device=cpu, seeds=[0]),
                 h.fastest_learner_plan(enc, run, device=cpu, seeds=[0])):
        h.run_study(plan, preset=run.name, device=cpu, path=folder / f"{plan.name}.json")
    return folder


@pytest.mark.parametrize("study, index", [("overfitting", 2), ("fastest_learner", 4)],
                         ids=["budgeted in steps", "budgeted in seconds"])
def test_a_run_of_a_study_is_trained_again_from_its_artefact_to_the_same_losses(quick_studies, study, index):
    """--rerun ARTEFACT --run N: the study's own code trains the recorded config again; a race (budgeted in seconds)
    takes the steps it took at the rates it took them at. Every loss the run measured agrees to 1e-6."""
    path = quick_studies / f"{study}.json"
    recorded = json.loads(path.read_text())["results"]["runs"][index]
    assert recorded["run"]["seed"] == recorded["config"]["seed"]
    result = pico_llm_here("--rerun", str(path), "--run", str(index), "--device_id", "cpu")
    assert result.returncode == 0, result.stderr
    assert f"training again run {index} of {path} ({study}, quick preset)" in result.stdout
    assert "the same run: every loss agrees to 1e-06" in result.stdout
    lines = [line for line in result.stdout.splitlines() if " recorded " in line and " replayed " in line]
    assert len(lines) >= 2 and all(line.endswith("same") for line in lines)
    if study == "fastest_learner":
        assert recorded["steps"] == len(recorded["learning_rates"]) > 2


def test_a_replay_that_trains_another_run_is_told_apart(quick_studies):
    """The comparison can fail: the recorded run of one seed, trained again with another, differs in every loss."""
    artefact = json.loads((quick_studies / "overfitting.json").read_text())
    run = h.StudyRun.read("overfitting.json", artefact, 0)
    other = h.StudyRun.read("overfitting.json", artefact, 1)  # the next remedy, same seed
    rows = h.replay_comparison(run.record, h.train_study_run(other, device=h.pick_device("cpu")))
    assert rows and not any(row["same"] for row in rows)


def test_a_study_that_changed_since_its_artefact_is_named_field_by_field_not_retrained(quick_studies, tmp_path):
    artefact = json.loads((quick_studies / "overfitting.json").read_text())
    artefact["config"]["budget"]["steps"] += 1
    changed = tmp_path / "overfitting.json"
    changed.write_text(json.dumps(artefact))
    result = pico_llm_here("--rerun", str(changed), "--run", "0", "--device_id", "cpu")
    assert result.returncode == 2
    steps = artefact["config"]["budget"]["steps"]
    assert f"the overfitting study has changed since this artefact was made (budget.steps: recorded {steps}, " \
           f"now {steps - 1})" in result.stderr
    assert "Traceback" not in result.stderr and "training again" in result.stdout and " replayed " not in result.stdout


def test_a_study_run_made_before_runs_recorded_how_they_trained_is_not_retrained(quick_studies, tmp_path):
    artefact = json.loads((quick_studies / "fastest_learner.json").read_text())
    for run in artefact["results"]["runs"]:
        del run["run"], run["learning_rates"]
    older = tmp_path / "fastest_learner.json"
    older.write_text(json.dumps(artefact))
    result = pico_llm_here("--rerun", str(older), "--run", "0", "--device_id", "cpu")
    assert result.returncode == 2
    assert "its runs were made before a study's runs recorded how they trained; make it again" in result.stderr
