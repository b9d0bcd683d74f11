"""The GPU path, tested where it can be on the CPU: precision, gradient accumulation, torch.compile, the memory
estimate, and data-parallel training with torchrun (two gloo processes)."""

import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import asdict

import pytest
import torch

import picollm_helpers as h
from conftest import ROOT
from picollm_helpers import cli

TINY = dict(d_model=32, n_heads=2, n_blocks=2, d_ff=64, max_seq_len=32)
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]


@pytest.fixture(scope="module")
def corpus(enc):
    return h.build_corpus(enc, 16, h.TrainingText(base_weight=0.0, input_dir=h.CUSTOM_CORPUS, test_fraction=0.1, seed=0))


def trained(corpus, steps=3, seed=0, **arithmetic):
    h.seed_everything(seed)
    model = h.TransformerModel(**TINY)
    run = h.TrainingRun(h.Budget(max_steps=steps), batch_size=8, seed=seed, arithmetic=h.Arithmetic(**arithmetic))
    return model, h.train_model(model, corpus, run, progress=False)


def largest_difference(first, second) -> float:
    return max((a - b).abs().max().item() for a, b in zip(first.state_dict().values(), second.state_dict().values()))


def test_precision_is_resolved_for_the_device():
    assert h.resolve_precision("auto", "cpu") == "fp32"
    assert h.resolve_precision("bf16", "cpu") == "bf16"
    with pytest.raises(h.InputError, match="--precision fp16 needs a CUDA GPU"):
        h.resolve_precision("fp16", "cpu")
    with pytest.raises(h.InputError, match="--precision"):
        h.resolve_precision("fp8", "cpu")


def test_bf16_trains_close_to_fp32_and_is_recorded(corpus):
    _, fp32 = trained(corpus)
    model, bf16 = trained(corpus, precision="bf16")
    assert bf16.attrs["precision"] == "bf16" and fp32.attrs["precision"] == "fp32"
    assert (bf16["loss"] - fp32["loss"]).abs().max() < 0.05
    assert h.evaluate(model, corpus, precision="bf16").nats_per_token == pytest.approx(
        h.evaluate(model, corpus).nats_per_token, abs=0.05)
    enc = h.get_tokenizer()
    for use_cache in (True, False):
        text = h.generate_text(model, enc, "The harbor", 5, seed=0, use_cache=use_cache, precision="bf16")
        assert text.startswith("The harbor") and len(text) > len("The harbor")


@pytest.mark.parametrize("packing", [True, False])
def test_gradient_accumulation_takes_the_same_steps(enc, packing):
    corpus = h.build_corpus(enc, 16, h.TrainingText(base_weight=0.0, input_dir=h.CUSTOM_CORPUS), packing=packing)
    whole, whole_history = trained(corpus)
    for parts in (2, 4):
        accumulated, history = trained(corpus, grad_accum_steps=parts)
        assert largest_difference(whole, accumulated) <= 1e-5, parts
        assert (history["loss"] - whole_history["loss"]).abs().max() <= 1e-5


def test_a_batch_that_does_not_split_is_refused(corpus):
    with pytest.raises(h.InputError, match="--batch_size 8 does not split evenly into 3 micro-batches"):
        trained(corpus, grad_accum_steps=3)


def test_compile_gives_the_same_losses_on_the_cpu(corpus):
    _, eager = trained(corpus)
    _, compiled = trained(corpus, compile=True)
    assert compiled.attrs["compiled"], "torch.compile fell back: see the note it printed"
    assert compiled["loss"].tolist() == pytest.approx(eager["loss"].tolist(), abs=1e-4)


def measured_peak(config: dict, batch_size: int, block_size: int, fused: bool, num_classes, device="cpu",
                  precision="fp32") -> int:
    """The peak tensor memory of building the model and taking three training steps."""
    family, arguments = h.memory.family_and_config(config)
    tokens = torch.randint(0, num_classes or 50257, (block_size + 1, batch_size), device=device)

    def train():
        model = h.build_model(family, **arguments, vocab_ids=list(range(num_classes - 1)) if num_classes else None)
        model = model.to(device)
        optimizer = h.make_optimizer(model, h.Recipe())
        for _ in range(3):
            with h.autocast(device, precision):
                loss = model.next_token_loss(tokens, fused=fused)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    return h.peak_tensor_memory(train, device)


MEMORY_CASES = {
    "transformer, full head, fused": (asdict(h.TransformerConfig(**TINY)), 16, 32, True, None),
    "transformer, full head, plain": (asdict(h.TransformerConfig(**TINY)), 16, 32, False, None),
    "GPT-oss design d128, compact head": (asdict(h.RUN_PRESETS["cpu"].transformer), 16, 64, True, 2000),
    "LSTM, full head": ({"family": "lstm", "vocab_size": 50257, "embed_size": 64, "hidden_size": 64}, 16, 32, True,
                        None),
    "k-gram onehot, full head": ({"family": "kgram", "vocab_size": 50257, "k": 2, "embed_size": 64,
                                  "num_inner_layers": 2, "variant": "onehot"}, 32, 32, True, None),
}


@pytest.mark.parametrize("case", MEMORY_CASES)
def test_the_memory_estimate_is_within_30_percent_of_the_measured_peak(case):
    config, batch_size, block_size, fused, classes = MEMORY_CASES[case]
    config = config if "family" in config else {"family": "transformer", **config}
    measured = measured_peak(config, batch_size, block_size, fused, classes)
    estimate = h.estimate_training_memory(config, batch_size, block_size, num_classes=classes, fused=fused)["total"]
    assert abs(estimate - measured) <= 0.3 * measured, f"estimate {estimate / 1e6:.0f} MB, measured {measured / 1e6:.0f} MB"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU to measure against")
def test_the_memory_estimate_against_cuda_peak_memory():
    config = {"family": "transformer", **asdict(h.transformer_config("GPT-oss", max_seq_len=256))}
    measured = measured_peak(config, 16, 256, True, None, device="cuda", precision="bf16")
    estimate = h.estimate_training_memory(config, 16, 256, "bf16")["total"]
    assert abs(estimate - measured) <= 0.3 * measured, f"estimate {estimate / 1e6:.0f} MB, measured {measured / 1e6:.0f} MB"


@pytest.mark.parametrize("notebook", ["01", "02", "03", "04", "05", "06", "07"])
def test_the_gpu_preset_fits_every_notebook_on_a_16_gb_card(notebook):
    table = h.memory_table(notebook, h.get_run_preset("gpu"), precision="bf16")
    assert table["total (GB)"].max() <= 15.0, table
    source = (ROOT / "notebooks").glob(f"{notebook}_*.py")
    assert f'h.memory_table("{notebook}"' in next(source).read_text(), "the notebook prints its estimate"


def pico_llm_args(tmp_path, name, batch_size=8):
    return ["--input_dir", "data/custom_corpus", "--tinystories_weight", "0", "--models", "transformer",
            "--transformer_variant", "minGPT", "--d_model", "32", "--n_blocks", "1", "--n_heads", "2",
            "--block_size", "16", "--batch_size", str(batch_size), "--max_steps", "5", "--vocab", "corpus",
            "--device_id", "cpu", "--save_checkpoint", str(tmp_path / f"{name}.pt")]


def run(command, env_extra=None):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", **(env_extra or {})}
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_two_gloo_processes_follow_the_trajectory_of_one(tmp_path):
    """torchrun with 2 processes sharing a global batch of 8 ends with the parameters of one process with 8 (which
    trains beside them)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    alone = subprocess.Popen([sys.executable, str(ROOT / "pico-llm.py"), *pico_llm_args(tmp_path, "one")], cwd=ROOT,
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    together = run([*TORCHRUN, str(ROOT / "pico-llm.py"), *pico_llm_args(tmp_path, "two")])
    assert together.returncode == 0, together.stderr[-3000:]
    _, alone_stderr = alone.communicate(timeout=120)
    assert alone.returncode == 0, alone_stderr
    assert largest_difference(h.load_checkpoint(tmp_path / "two.pt"), h.load_checkpoint(tmp_path / "one.pt")) <= 1e-5
    assert together.stdout.count("held-out loss") <= 1 and together.stdout.count("== minGPT") == 1, \
        "only rank 0 prints"


def test_two_gloo_processes_stopped_by_ctrl_c_resume_to_the_end_of_one(tmp_path):
    """Ctrl-C in a terminal reaches torchrun and both processes, and torchrun forwards it again: both stop after the
    same step, rank 0 writes the checkpoint and prints how to resume, and that command, where both processes read
    the checkpoint, ends with the parameters of one process that nothing stopped."""
    longer = ["--max_steps", "80", "--checkpoint_every", "5"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    alone = subprocess.Popen([sys.executable, str(ROOT / "pico-llm.py"), *pico_llm_args(tmp_path, "one"), *longer],
                             cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    checkpoint = tmp_path / "two.pt"
    together = subprocess.Popen([*TORCHRUN, str(ROOT / "pico-llm.py"), *pico_llm_args(tmp_path, "two"), *longer],
                                cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
    deadline = time.monotonic() + 60
    while not checkpoint.is_file():
        assert together.poll() is None and time.monotonic() < deadline, together.communicate()
        time.sleep(0.01)
    os.killpg(together.pid, signal.SIGINT)
    _, stderr = together.communicate(timeout=60)
    stopped = [line for line in stderr.splitlines() if line.startswith("Stopped at step")]
    assert len(stopped) == 1, stderr[-3000:]
    steps_done = torch.load(checkpoint, weights_only=True)["training"]["schedule"]["steps_done"]
    assert stopped[0].startswith(f"Stopped at step {steps_done} of 80; resume with: torchrun --standalone "
                                 "--nproc_per_node 2 ")
    command = shlex.split(stopped[0].split("resume with: ")[1])
    resumed = run([sys.executable, "-m", "torch.distributed.run", *command[1:]])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resumed at step {steps_done}" in resumed.stdout
    assert alone.wait(timeout=120) == 0, alone.communicate()
    assert largest_difference(h.load_checkpoint(checkpoint), h.load_checkpoint(tmp_path / "one.pt")) <= 1e-5


def test_a_world_size_that_does_not_divide_the_batch_is_one_clear_error(tmp_path):
    result = run([*TORCHRUN, str(ROOT / "pico-llm.py"), *pico_llm_args(tmp_path, "odd", batch_size=3)])
    assert result.returncode != 0
    assert "--batch_size 3 does not split evenly into 2 processes" in result.stderr
    assert not (tmp_path / "odd.pt").exists()


def test_nccl_on_the_cpu_is_one_clear_error(tmp_path):
    """As torchrun would start it (its environment), asking for NCCL on a machine without GPUs."""
    result = run([sys.executable, str(ROOT / "pico-llm.py"), *pico_llm_args(tmp_path, "nccl"), "--dist_backend", "nccl"],
                 env_extra={"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0"})
    assert result.returncode == 2 and "--dist_backend nccl needs CUDA GPUs" in result.stderr
    assert not (tmp_path / "nccl.pt").exists()


def test_a_failing_process_ends_the_run_with_its_error_rather_than_a_hang(tmp_path):
    script = tmp_path / "fails.py"
    script.write_text(f"""
import picollm_helpers as h
h.start_data_parallel("gloo", timeout_s=20)
if h.process_rank() == 1:
    raise RuntimeError("rank 1 failed on purpose")
corpus = h.build_corpus(h.get_tokenizer(), 16, base_weight=0.0, input_dir=h.CUSTOM_CORPUS)
h.train_model(h.TransformerModel(**{TINY!r}), corpus, h.TrainingRun(h.Budget(max_steps=50), batch_size=8), progress=False)
""")
    started = time.perf_counter()
    result = run([*TORCHRUN, str(script)])
    assert result.returncode != 0
    assert "rank 1 failed on purpose" in result.stdout + result.stderr
    assert time.perf_counter() - started < 60


def test_a_compile_that_fails_falls_back_with_one_note(corpus, monkeypatch, capsys):
    class Uncompilable(torch.nn.Module):
        def forward(self, *args):
            raise RuntimeError("no compiler for this machine (simulated)")

    monkeypatch.setattr(torch, "compile", lambda module: Uncompilable())
    _, eager = trained(corpus)
    _, history = trained(corpus, compile=True)
    assert not history.attrs["compiled"]
    assert history["loss"].tolist() == eager["loss"].tolist()
    assert capsys.readouterr().err.count("--compile failed") == 1


def test_precision_on_the_command_line_is_checked_before_any_work(tmp_path, capsys):
    """The command line's main, in this process: its return value is pico-llm.py's exit status."""
    assert cli.main([*pico_llm_args(tmp_path, "fp16"), "--precision", "fp16"]) == 2
    assert "--precision fp16 needs a CUDA GPU" in capsys.readouterr().err
    assert not (tmp_path / "fp16.pt").exists()
    assert cli.main([*pico_llm_args(tmp_path, "bf16"), "--precision", "bf16"]) == 0, capsys.readouterr().err
    assert h.load_checkpoint(tmp_path / "bf16.pt").checkpoint_metadata["precision"] == "bf16"
