"""Training that survives a disconnect: a run killed or stopped part-way resumes to the end an uninterrupted run
reaches, and a bad checkpoint to resume from is one clear error that leaves every file as it was."""

import functools
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

import picollm_helpers as h
from picollm_helpers import cli, resume
from conftest import ROOT

STEPS, EVERY = 200, 20
RUN = ["--models", "transformer", "--transformer_variant", "minGPT", "--d_model", "32", "--n_blocks", "1",
       "--n_heads", "2", "--block_size", "16", "--batch_size", "4", "--tinystories_weight", "0",
       "--input_files", "3seqs.txt", "--vocab", "corpus", "--device_id", "cpu", "--max_steps", str(STEPS)]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def start(*args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(ROOT / "pico-llm.py"), *args], cwd=ROOT, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen) -> subprocess.CompletedProcess:
    stdout, stderr = process.communicate(timeout=120)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def pico_llm(*args) -> subprocess.CompletedProcess:
    return finish(start(*args))


def signal_after_first_checkpoint(checkpoint, signal_number, *args) -> subprocess.CompletedProcess:
    """Start a run that writes `checkpoint` every EVERY steps; once the first is there, send it the signal."""
    process = start(*args)
    deadline = time.monotonic() + 60
    while not checkpoint.is_file():
        assert process.poll() is None, f"the run ended before its first checkpoint: {process.communicate()}"
        assert time.monotonic() < deadline, "no checkpoint within a minute"
        time.sleep(0.01)
    process.send_signal(signal_number)
    return finish(process)


def training_state(path) -> dict:
    return torch.load(path, weights_only=True)["training"]


def largest_difference(first, second) -> float:
    first, second = h.load_checkpoint(first).state_dict(), h.load_checkpoint(second).state_dict()
    assert first.keys() == second.keys()
    return max((first[name] - second[name]).abs().max().item() for name in first)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The final checkpoint of the run that nothing stopped: started at once, it trains beside the first
    interrupted run, and is waited for where it is needed."""
    path = tmp_path_factory.mktemp("uninterrupted") / "run.pt"
    process = start(*RUN, "--save_checkpoint", str(path))

    @functools.cache
    def final_checkpoint():
        result = finish(process)
        assert result.returncode == 0, result.stderr
        return path

    yield final_checkpoint
    process.kill()


def test_a_run_killed_after_its_first_checkpoint_resumes_to_the_uninterrupted_end(uninterrupted, tmp_path):
    checkpoint, metrics = tmp_path / "run.pt", tmp_path / "run.json"
    killed = signal_after_first_checkpoint(checkpoint, signal.SIGKILL, *RUN, "--save_checkpoint", str(checkpoint),
                                           "--checkpoint_every", str(EVERY))
    assert killed.returncode == -signal.SIGKILL
    killed_at = training_state(checkpoint)["schedule"]["steps_done"]
    assert killed_at % EVERY == 0 and killed_at < STEPS, "the last periodic checkpoint, whole"

    resumed = pico_llm(*RUN, "--save_checkpoint", str(checkpoint), "--checkpoint_every", str(EVERY),
                       "--resume", str(checkpoint), "--metrics_json", str(metrics))
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed at step {killed_at}" in resumed.stdout
    assert largest_difference(checkpoint, uninterrupted()) <= 1e-6
    assert training_state(checkpoint)["schedule"]["steps_done"] == training_state(uninterrupted())["schedule"][
        "steps_done"] == STEPS
    summary = json.loads(metrics.read_text())
    assert summary["steps"] == STEPS and summary["resumed_from_step"] == killed_at


def test_sigterm_finishes_the_step_writes_the_checkpoint_and_says_how_to_resume(uninterrupted, tmp_path):
    checkpoint = tmp_path / "run.pt"
    stopped = signal_after_first_checkpoint(checkpoint, signal.SIGTERM, *RUN, "--save_checkpoint", str(checkpoint),
                                            "--checkpoint_every", str(EVERY))
    assert stopped.returncode == 143, stopped.stderr
    line = stopped.stderr.strip().splitlines()[-1]
    stopped_at = training_state(checkpoint)["schedule"]["steps_done"]
    assert line.startswith(f"Stopped at step {stopped_at} of {STEPS}; resume with: ")
    assert 0 < stopped_at < STEPS and "Traceback" not in stopped.stderr

    command = shlex.split(line.split("resume with: ")[1])
    assert command[1:] == [str(ROOT / "pico-llm.py"), *RUN, "--save_checkpoint", str(checkpoint), "--checkpoint_every",
                           str(EVERY), "--resume", str(checkpoint)]
    resumed = subprocess.run([sys.executable, *command[1:]], cwd=ROOT, env=ENV, capture_output=True, text=True,
                             timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert largest_difference(checkpoint, uninterrupted()) <= 1e-6
    assert training_state(checkpoint)["schedule"]["steps_done"] == STEPS


def test_a_truncated_checkpoint_is_one_clear_error_and_is_left_as_it_was(uninterrupted, tmp_path, capsys):
    """The command line's main, in this process: its return value is pico-llm.py's exit status."""
    damaged = tmp_path / "run.pt"
    whole = uninterrupted().read_bytes()
    damaged.write_bytes(whole[:len(whole) // 2])
    before = damaged.read_bytes()
    status = cli.main([*RUN, "--resume", str(damaged), "--checkpoint_every", str(EVERY),
                       "--metrics_json", str(tmp_path / "run.json")])
    error = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(error) == 1
    assert error[0].startswith(f"error: {damaged} is truncated or corrupt"), error
    assert damaged.read_bytes() == before and sorted(tmp_path.iterdir()) == [damaged], "nothing written"


# ---------------------------------------------------------------- in one process, as a notebook trains


@pytest.fixture(scope="module")
def examples(enc):
    """The starter's per-example corpus: batches from a DataLoader and Python's random (nothing held out, so that
    the steps are not slowed by evaluations)."""
    return h.build_corpus(enc, 16, h.TrainingText(base_weight=0.0, input_dir=h.CUSTOM_CORPUS), packing=False)


def train(corpus, budget: h.Budget, checkpointing=h.Checkpointing(), seed=0, on_eval=None):
    """A small Transformer with dropout (so that torch's random state matters), with a compact head."""
    h.seed_everything(seed)
    model = h.TransformerModel(d_model=16, n_heads=2, n_blocks=1, d_ff=32, max_seq_len=16, dropout=0.1,
                               vocab_ids=h.ids_seen(corpus.train_streams(), 50257))
    run = h.TrainingRun(budget, batch_size=4, evaluation=h.Evaluation(every=1), checkpointing=checkpointing)
    return model, h.train_model(model, corpus, run, on_eval=on_eval, progress=False)


def interrupt_at(stop_step: int):
    """An on_eval that presses Ctrl-C (sends this process SIGINT) during step `stop_step`'s evaluation."""
    def on_eval(step, model):
        if step == stop_step:
            os.kill(os.getpid(), signal.SIGINT)
    return on_eval


def test_ctrl_c_in_a_notebook_leaves_a_checkpoint_that_resumes_to_the_same_end(examples, tmp_path):
    budget = h.Budget(max_steps=8, steps_per_epoch=3)
    whole_model, whole = train(examples, budget)
    path = tmp_path / "run.pt"
    handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt) as interrupted:
        train(examples, budget, h.Checkpointing(path=path), on_eval=interrupt_at(3))
    assert isinstance(interrupted.value, h.TrainingStopped) and interrupted.value.exit_status == 130
    assert interrupted.value.step == 3 and training_state(path)["schedule"]["steps_done"] == 3
    assert signal.getsignal(signal.SIGINT) is handler, "the previous handler is back"

    model, history = train(examples, budget, h.Checkpointing(path=path, resume_from=h.resume_point(path)), seed=123)
    assert history.attrs["resumed_from_step"] == 3
    assert history["step"].tolist() == list(range(1, 9)), "the whole run's history"
    assert history["loss"].tolist() == whole["loss"].tolist()
    difference = max((a - b).abs().max().item() for a, b in zip(model.state_dict().values(),
                                                               whole_model.state_dict().values()))
    assert difference <= 1e-6


def test_a_signal_during_the_step_s_all_reduce_stops_the_processes_after_the_next_step(monkeypatch):
    """In a data-parallel run the processes share their stop requests in an all-reduce after each step. A signal that
    lands while one process waits there for the other is not lost: all of them stop after the next step."""
    stop = resume.StopRequests()

    def all_reduce_meanwhile_a_signal(flag, op):  # the other process asked for nothing; this one is signalled now
        stop.request(signal.SIGINT, None)

    monkeypatch.setattr(resume, "process_count", lambda: 2)
    monkeypatch.setattr(resume.dist, "all_reduce", all_reduce_meanwhile_a_signal)
    assert stop.agreed(torch.device("cpu")) is None, "every process goes on from this step"
    assert stop.agreed(torch.device("cpu")) == signal.SIGINT, "and every process stops after the next"


def test_a_time_budget_goes_on_with_the_seconds_left(enc, tmp_path):
    corpus = h.build_corpus(enc, 16, h.TrainingText(base_weight=0.0, input_files=["3seqs.txt"]))
    path = tmp_path / "run.pt"
    with pytest.raises(h.TrainingStopped, match="of about"):
        train(corpus, h.Budget(train_seconds=1.0), h.Checkpointing(path=path), on_eval=interrupt_at(3))
    spent = training_state(path)["schedule"]["elapsed"]
    _, history = train(corpus, h.Budget(train_seconds=1.0), h.Checkpointing(path=path, resume_from=path))
    assert history["elapsed_s"].iloc[2] == spent and history["elapsed_s"].iloc[3] > spent
    assert 1.0 <= history["elapsed_s"].iloc[-1] < 1.0 + 5 * history["elapsed_s"].diff().median() + 0.2
    assert history["learning_rate"].iloc[-1] < 0.3 * history["learning_rate"].max(), "the cosine spans the run"


def test_the_schedule_goes_on_from_its_position():
    recipe = h.Recipe(learning_rate=1.0)
    first, resumed = h.Schedule(recipe, train_seconds=10.0), h.Schedule(recipe, train_seconds=10.0)
    for seconds in (2.0, 0.5, 0.4):
        first.update(seconds)
    resumed.load_state_dict(first.state_dict())
    for schedule in (first, resumed):
        schedule.update(0.6)
    assert resumed.planned_steps == first.planned_steps and resumed.elapsed == first.elapsed
    assert [resumed.rate(step) for step in range(30)] == [first.rate(step) for step in range(30)]


def test_a_finished_run_resumes_to_its_history_without_training(examples, tmp_path):
    path = tmp_path / "run.pt"
    _, whole = train(examples, h.Budget(max_steps=3), h.Checkpointing(path=path))
    before = training_state(path)["optimizer"]["state"]
    _, again = train(examples, h.Budget(max_steps=3), h.Checkpointing(path=path, resume_from=path))
    assert again["loss"].tolist() == whole["loss"].tolist() and again.attrs["resumed_from_step"] == 3
    after = training_state(path)["optimizer"]["state"]
    assert all(torch.equal(before[key]["exp_avg"], after[key]["exp_avg"]) for key in before), "no step taken"


def test_checkpoint_every_needs_a_path(examples):
    with pytest.raises(h.InputError, match="needs a file"):
        train(examples, h.Budget(max_steps=2), h.Checkpointing(every=1))
    with pytest.raises(h.InputError, match="--checkpoint_every 5 needs a file"):
        cli.check_args(cli.build_parser().parse_args(["--input_files", "3seqs.txt", "--checkpoint_every", "5"]))


# ---------------------------------------------------------------- bad checkpoints to resume from


BAD_RESUMES = {
    "missing": ([], "no checkpoint at"),
    "another family": (["--models", "lstm"], "family 'transformer' there, 'lstm' here (--models)"),
    "another size": (["--d_model", "64"], "d_model 32 there, 64 here (--d_model)"),
    "another vocabulary": (["--vocab", "gpt2"], "vocabulary: 88 ids of the training text there, all 50,257 GPT-2 "
                                                "ids here"),
    "other settings": (["--batch_size", "8"], "batch_size 4 there, 8 here (--batch_size)"),
}


@pytest.mark.parametrize("case", BAD_RESUMES)
def test_a_checkpoint_of_another_model_or_run_is_one_clear_line_before_any_training(case, uninterrupted, tmp_path,
                                                                                  capsys):
    flags, message = BAD_RESUMES[case]
    checkpoint = tmp_path / "run.pt"
    if case != "missing":
        shutil.copy(uninterrupted(), checkpoint)
    before = checkpoint.read_bytes() if checkpoint.exists() else None
    arguments = RUN + flags if "--models" not in flags else RUN[2:] + flags
    status = cli.main([*arguments, "--resume", str(checkpoint), "--metrics_json", str(tmp_path / "run.json")])
    error = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and error[-1].startswith("error: ") and message in error[-1], error
    assert str(checkpoint) in error[-1]
    assert (checkpoint.read_bytes() if checkpoint.exists() else None) == before
    assert sorted(tmp_path.iterdir()) == ([checkpoint] if before else []), "nothing written"


def test_a_checkpoint_in_the_earlier_format_still_loads_its_weights(tmp_path):
    """Before training checkpoints, a checkpoint held the model alone: load_checkpoint still rebuilds it, and
    resuming from it says why it cannot."""
    model = h.TransformerModel(d_model=16, n_heads=2, n_blocks=1, d_ff=32, max_seq_len=16,
                               vocab_ids=list(range(100)), bucket="uniform")  # the only bucket there was
    path = tmp_path / "old.pt"
    torch.save({"family": "transformer", "config": model.config, "vocab_ids": model.vocabulary.ids(),
                "tokenizer": "gpt2", "state_dict": model.state_dict(),
                "metadata": {"precision": "fp32", "trained_on": "3seqs.txt", "steps": 5}}, path)
    loaded = h.load_checkpoint(path)
    tokens = torch.randint(0, 100, (8, 2))
    assert torch.equal(loaded.log_probs(tokens), model.eval().log_probs(tokens))
    assert loaded.checkpoint_metadata["steps"] == 5
    with pytest.raises(h.InputError, match="holds a model but no training state"):
        h.read_training_checkpoint(path)


def test_garbage_is_named_and_a_missing_file_is_no_resume_point(tmp_path):
    garbage = tmp_path / "notes.pt"
    garbage.write_text("not a checkpoint")
    with pytest.raises(h.InputError, match=f"{garbage} is truncated or corrupt"):
        h.read_training_checkpoint(garbage)
    assert h.resume_point(tmp_path / "nothing.pt") is None and h.resume_point(garbage) == garbage


def test_a_write_that_fails_half_way_leaves_the_last_checkpoint_whole(tmp_path, monkeypatch):
    path = tmp_path / "run.pt"
    h.write_atomically({"steps": 1}, path)
    before = path.read_bytes()

    def fails_half_way(payload, file):
        file.write(b"half a checkpoint")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", fails_half_way)
    with pytest.raises(h.InputError, match="No space left on device"):
        h.write_atomically({"steps": 2}, path)
    assert path.read_bytes() == before and sorted(tmp_path.iterdir()) == [path], "no temporary file left"
