"""Where a training step's compute goes: one step profiled and its time split into the output head, the softmax
and loss, the blocks, and the optimizer; and the fused linear + cross-entropy measured against the plain path."""

from __future__ import annotations

import itertools
import os
import time
from dataclasses import asdict

import pandas as pd
import torch
from torch._C._profiler import _EventType

from ..artefacts import read_artefact, write_artefact
from ..device import seed_everything
from ..heads import FUSED_CHUNK_ROWS
from ..models import build_model, count_parameters, describe_vocabulary
from ..presets import TransformerConfig
from ..training import Recipe, make_optimizer

# ---------------------------------------------------------------- the fused loss against the plain path


def loss_path_speed(config: TransformerConfig, *, fused: bool, device, batch_size: int = 16, block_size: int = 64,
                    warmup_steps: int = 2, timed_steps: int = 5, seed: int = 0) -> dict:
    """Training tokens/s of one model with the fused or the plain loss, on random tokens (the median step
    after warm-up), and the peak tensor memory of building it and taking two steps."""
    tokens = torch.randint(0, config.vocab_size, (block_size + 1, batch_size), device=device)

    def train(steps: int) -> list[float]:
        seed_everything(seed)
        model = build_model("transformer", **asdict(config)).to(device)
        optimizer = make_optimizer(model, Recipe())
        seconds = []
        for _ in range(steps):
            started = clock(device)
            loss = model.next_token_loss(tokens, fused=fused)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss.item()
            seconds.append(clock(device) - started)
        return seconds

    step_s = sorted(train(warmup_steps + timed_steps)[warmup_steps:])[timed_steps // 2]
    return {"fused": fused, "d_model": config.d_model, "tokens_per_s": block_size * batch_size / step_s,
            "step_s": step_s, "peak_memory_mb": peak_tensor_memory(lambda: train(2), device) / 2**20}


def clock(device) -> float:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter()


def quiet_profiler(**options) -> torch.profiler.profile:
    """torch's profiler, without the trace library's start and stop lines on the terminal (they
    bypass Python, so a notebook run would print them)."""
    os.environ.setdefault("KINETO_LOG_LEVEL", "99")
    return torch.profiler.profile(**options)


def peak_tensor_memory(work, device) -> int:
    """The most bytes held in tensors at once while `work()` runs (weights included if it builds them).

    On a GPU, the CUDA allocator's peak. On the CPU, the peak of the running total of the bytes
    that torch's profiler saw allocated and freed: what the estimate counts, without the
    allocator's own slack or the libraries' pages that a process's resident memory also holds.
    """
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        work()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - before
    with quiet_profiler(activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True) as profile:
        work()
    return max(itertools.accumulate(cpu_allocations(profile)), default=0)


def cpu_allocations(profile: torch.profiler.profile) -> list[int]:
    """The bytes allocated (positive) and freed (negative) on the CPU while a profiler ran, in order.

    They are read from the profiler's event tree, where its memory timeline reads them. The
    timeline also needs a trace of every Python call (with_stack=True), which can make
    measuring three steps of a small model take a minute.
    """
    pending, found = list(profile.profiler.kineto_results.experimental_event_tree()), []
    while pending:
        event = pending.pop()
        pending.extend(event.children)
        if event.tag == _EventType.Allocation and event.extra_fields.device.type == "cpu":
            found.append((event.start_time_ns, event.extra_fields.alloc_size))
    return [size for _, size in sorted(found)]


def fused_loss_comparison(cases=((128, 16), (512, 16), (128, 64)), *, device, n_blocks: int = 4, n_heads: int = 4,
                          block_size: int = 64, timed_steps: int = 10, preset: str = "benchmark", path=None) -> dict:
    """Tokens/s and peak memory of the fused and the plain loss, full GPT-2 head, for each (width, batch) case.

    The model is minGPT's design resized to each width with n_blocks blocks; a batch holds
    batch x block_size tokens. The two paths are measured in turns, plain first. Writes
    artefacts/fused_loss.json (or `path`) and returns it.
    """
    rows = []
    for width, batch_size in cases:
        config = TransformerConfig(d_model=width, n_heads=n_heads, n_blocks=n_blocks, d_ff=4 * width,
                                   norm="layernorm", max_seq_len=block_size)
        for fused in (False, True):
            row = loss_path_speed(config, fused=fused, device=device, batch_size=batch_size, block_size=block_size,
                                  timed_steps=timed_steps)
            rows.append({**row, "batch_size": batch_size, "tokens_per_step": batch_size * block_size})
            print(f"d_model {width}, batch {batch_size}, {'fused' if fused else 'plain'}: "
                  f"{row['tokens_per_s']:,.0f} tokens/s, peak {row['peak_memory_mb']:,.0f} MB of tensors", flush=True)
    config = {"cases": [list(case) for case in cases], "n_blocks": n_blocks, "n_heads": n_heads,
              "block_size": block_size, "timed_steps": timed_steps, "head": "gpt2 (50,257 ids)",
              "chunk_rows": FUSED_CHUNK_ROWS,
              "memory": "peak tensor memory of building the model and two steps (weights, gradients, AdamW "
                        "state, activations, logits): the running total of the profiler's allocations on the "
                        "CPU, the CUDA allocator's peak on a GPU"}
    written = write_artefact("fused_loss", preset=preset, config=config, results={"rows": rows}, device=device,
                             path=path)
    return read_artefact(written)


# ---------------------------------------------------------------- where one training step's time goes

STEP_PARTS = ("output head", "softmax and loss", "blocks and embeddings", "optimizer")


def op_part(name: str, shapes: list, num_classes: int) -> str:
    """Which part of a training step a profiled operator belongs to."""
    lowered = name.lower()
    if "adam" in lowered or "foreach" in lowered or "clip" in lowered or "norm_" in lowered:
        return "optimizer"
    if any(key in lowered for key in ("log_softmax", "nll_loss", "cross_entropy")):
        return "softmax and loss"
    if any(key in lowered for key in ("mm", "linear", "matmul")) and any(
            num_classes in shape for shape in shapes if isinstance(shape, (list, tuple))):
        return "output head"
    return "blocks and embeddings"


def step_breakdown(config: TransformerConfig, *, device, vocab_ids=None, batch_size: int = 16, block_size: int = 64,
                   profiled_steps: int = 3, seed: int = 0) -> dict:
    """Profile training steps on the plain loss path and split their time into STEP_PARTS.

    Also the FLOPs per trained token of each part: the head 6 d C (forward 2 d C, backward
    4 d C, C classes), the blocks 6 N_blocks + 12 L T d (nanoGPT's count: weights, then
    attention scores), and the softmax about 5 C (a few passes over the logits). The
    optimizer works per step, not per token: about 16 operations per parameter, divided
    by the tokens of a step.
    """
    seed_everything(seed)
    model = build_model("transformer", **asdict(config), vocab_ids=vocab_ids).to(device)
    optimizer = make_optimizer(model, Recipe())
    tokens = torch.randint(0, config.vocab_size, (block_size + 1, batch_size), device=device)

    def step():
        loss = model.next_token_loss(tokens, fused=False)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()

    for _ in range(2):
        step()
    with quiet_profiler(record_shapes=True) as profile:
        for _ in range(profiled_steps):
            step()
    classes = model.num_classes
    milliseconds = dict.fromkeys(STEP_PARTS, 0.0)
    for event in profile.key_averages(group_by_input_shape=True):
        milliseconds[op_part(event.key, event.input_shapes, classes)] += event.self_cpu_time_total / 1000
    milliseconds = {part: value / profiled_steps for part, value in milliseconds.items()}
    d, step_tokens = config.d_model, block_size * batch_size
    block_parameters = sum(p.numel() for p in model.blocks.parameters())
    flops = {"output head": 6 * d * classes, "softmax and loss": 5 * classes,
             "blocks and embeddings": 6 * block_parameters + 12 * config.n_blocks * block_size * d,
             "optimizer": 16 * count_parameters(model) / step_tokens}
    total_ms = sum(milliseconds.values())
    return {"vocabulary": describe_vocabulary(model), "classes": classes, "step_ms": total_ms,
            "parts": {part: {"ms": milliseconds[part], "share": milliseconds[part] / total_ms,
                             "flops_per_token": flops[part]} for part in STEP_PARTS}}


def step_breakdown_table(artefact: dict):
    """Milliseconds, share and FLOPs per token of each part of a step, for each head in step_breakdown.json."""
    return pd.DataFrame({(head, part): values for head, breakdown in artefact["results"]["breakdowns"].items()
                         for part, values in breakdown["parts"].items()}).T


def fused_loss_table(artefact: dict):
    """Tokens/s and peak memory of the plain and the fused loss in each case, from fused_loss.json."""
    table = pd.DataFrame(artefact["results"]["rows"])
    table["loss"] = table["fused"].map({True: "fused", False: "plain"})
    return table.pivot(index=["d_model", "tokens_per_step"], columns="loss", values=["tokens_per_s", "peak_memory_mb"])
