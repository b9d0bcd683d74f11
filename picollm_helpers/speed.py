"""Section 8 (continued). Learning speed, and where a training step's compute goes.

The yardstick of the bundle is learning speed: the held-out loss (full-vocabulary nats per
token) a model reaches after a fixed number of seconds of training on real text. The
learning-speed benchmark trains the same model several ways for the same seconds and records
the held-out loss against time. The step breakdown profiles one training step and splits its
time into the output head, the softmax and loss, the blocks, and the optimizer; the fused-loss
comparison measures the chunked linear + cross-entropy against the plain path.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import pandas as pd
import torch

from .presets import InputError
from .device import AUTOCAST_DTYPES, seed_everything
from .artefacts import read_artefact, write_artefact
from .heads import FUSED_CHUNK_ROWS, ids_seen
from .models import build_model, count_parameters, describe_vocabulary
from .corpus import build_corpus
from .presets import TransformerConfig
from .sampling import generate_text
from .training import STARTER_RECIPE, Recipe, make_optimizer, run_summary, train_model


def file_record(path: str | os.PathLike) -> dict:
    """A file's name, size and SHA-256: what an artefact records of the data it measured on."""
    path = Path(path)
    data = path.read_bytes()
    return {"name": path.name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


# ---------------------------------------------------------------- the learning-speed benchmark


@dataclass(frozen=True)
class SpeedRun:
    """One way of training for the learning-speed benchmark."""

    label: str
    packing: bool
    recipe: Recipe
    vocab: str = "gpt2"  # "gpt2" or "corpus"
    transformer: TransformerConfig | None = None  # None: the benchmark's shared model
    batch_size: int | None = None  # None: the benchmark's
    block_size: int | None = None  # None: the benchmark's
    min_count: int = 3  # a compact head's ids: those seen at least this often (3 learned best in 120 s)


def speed_run_config(run: SpeedRun) -> dict:
    config = asdict(run)
    config["recipe"] = asdict(run.recipe)
    return config


def learning_speed(train_file, heldout_file, runs: list[SpeedRun], *, model: TransformerConfig, enc, device,
                   train_seconds: float = 120.0, eval_every_seconds: float = 15.0, batch_size: int = 16,
                   block_size: int = 64, seed: int = 0, prompt: str = "ORLANDO.\n", max_new_tokens: int = 40,
                   preset: str = "benchmark", name: str = "learning_speed", path=None) -> dict:
    """Train `model` each way in `runs` for train_seconds on train_file; held-out loss on heldout_file against time.

    Every run is evaluated on the same held-out windows (consecutive, block_size tokens, every
    held-out token predicted once), in full-vocabulary nats per token, whatever its data path
    or head. Each run records its curve, its summary (tokens/s, steps, tokens) and a greedy and
    a p = 0.8 sample. Writes artefacts/<name>.json (or `path`) and returns it.
    """
    for file in (train_file, heldout_file):
        if not Path(file).is_file():
            raise InputError(f"{file} not found: the learning-speed benchmark needs a training file and a "
                             "held-out file (see benchmarks/learning_speed.py --help).")
    results = {}
    for run in runs:
        print(f"[{len(results) + 1}/{len(runs)}] {run.label}: {train_seconds:g} s of training", flush=True)
        results[run.label] = one_speed_run(run, train_file, heldout_file, model=model, enc=enc, device=device,
                                           train_seconds=train_seconds, eval_every_seconds=eval_every_seconds,
                                           batch_size=batch_size, block_size=block_size, seed=seed, prompt=prompt,
                                           max_new_tokens=max_new_tokens)
    config = {"train_file": file_record(train_file), "heldout_file": file_record(heldout_file),
              "train_seconds": train_seconds, "eval_every_seconds": eval_every_seconds, "batch_size": batch_size,
              "block_size": block_size, "seed": seed, "prompt": prompt, "model": asdict(model),
              "runs": {run.label: speed_run_config(run) for run in runs}, "threads": torch.get_num_threads()}
    written = write_artefact(name, preset=preset, config=config, results={"runs": results}, device=device, path=path)
    return read_artefact(written)


def one_speed_run(run: SpeedRun, train_file, heldout_file, *, model: TransformerConfig, enc, device,
                  train_seconds: float, eval_every_seconds: float, batch_size: int, block_size: int, seed: int,
                  prompt: str, max_new_tokens: int) -> dict:
    block_size = run.block_size or block_size
    heldout = build_corpus(enc, block_size, base_weight=0.0, input_files=[train_file],
                           eval_files=[heldout_file])
    training = heldout if run.packing else build_corpus(enc, block_size, packing=False, base_weight=0.0,
                                                         input_files=[train_file])
    vocab_ids = ids_seen(training.train_streams(), model.vocab_size, run.min_count) if run.vocab == "corpus" else None
    seed_everything(seed)
    config = run.transformer or model
    network = build_model("transformer", **{**asdict(config), "max_seq_len": max(config.max_seq_len, block_size)},
                          vocab_ids=vocab_ids).to(device)
    history = train_model(network, training, batch_size=run.batch_size or batch_size, train_seconds=train_seconds,
                          recipe=run.recipe, seed=seed, name=run.label, eval_every_seconds=eval_every_seconds,
                          heldout=heldout)
    evaluated = history.dropna(subset=["test_loss"])
    samples = {name: generate_text(network, enc, prompt, max_new_tokens, top_p=top_p, seed=seed)
               for name, top_p in (("greedy", None), ("p = 0.8", 0.8))}
    return {**run_summary(history), "curve": evaluated[["elapsed_s", "test_loss"]].values.tolist(),
            "samples": samples, "parameters": count_parameters(network), "vocabulary": describe_vocabulary(network),
            "block_size": block_size}


STARTER_WAY = "per-example lines, Adam at a constant rate (the starter)"
PACKED_FULL = "packed, AdamW + cosine, full head"
PACKED_COMPACT = "packed, AdamW + cosine, compact head"
MARKS_S = (30, 60, 120)


def benchmark_runs(preset_transformer: TransformerConfig | None = None) -> list[SpeedRun]:
    """The ways the learning-speed benchmark compares, on its shared model; then the cpu preset's Transformer."""
    runs = [SpeedRun(STARTER_WAY, packing=False, recipe=STARTER_RECIPE),
            SpeedRun(PACKED_FULL, packing=True, recipe=Recipe()),
            SpeedRun(PACKED_COMPACT, packing=True, recipe=Recipe(), vocab="corpus")]
    if preset_transformer is not None:
        runs.append(SpeedRun("the cpu preset's Transformer (compact head)", packing=True, recipe=Recipe(),
                             vocab="corpus", transformer=preset_transformer))
    return runs


def recipe_runs(base: Recipe = Recipe()) -> list[SpeedRun]:
    """The recipe sweep behind the defaults: the peak learning rate, then each other choice of the recipe
    taken away in turn, all on packed streams with a compact head."""
    def run(label: str, **changes) -> SpeedRun:
        return SpeedRun(label, packing=True, recipe=replace(base, **changes), vocab="corpus")

    return [run(f"learning rate {rate:g}", learning_rate=rate) for rate in (1e-3, 2e-3, 4e-3)] + [
        run("no warm-up", warmup_steps=0), run("no weight decay", weight_decay=0.0), run("no clipping", grad_clip=None),
        run("constant rate", schedule="constant"),
        run("the starter's Adam, constant rate", optimizer="adam", betas=(0.9, 0.999), schedule="constant",
            warmup_steps=0, weight_decay=0.0, grad_clip=None)]


def recipe_table(artefact: dict):
    """Each recipe's held-out loss at the end and its tokens/s, best first, from recipe_sweep.json."""
    end = artefact["config"]["train_seconds"]
    rows = {label: {f"held-out loss at {end:g} s": loss_at(run["curve"], end), "tokens/s": run["tokens_per_s"]}
            for label, run in artefact["results"]["runs"].items()}
    return pd.DataFrame(rows).T.sort_values(f"held-out loss at {end:g} s")


def loss_at(curve: list, seconds: float) -> float:
    """The held-out loss of the first evaluation at or after `seconds` of training (the last one if none)."""
    return next((loss for at, loss in curve if at >= seconds), curve[-1][1])


def learning_speed_table(artefact: dict, marks=MARKS_S):
    """Per run: held-out loss at each mark, tokens/s, steps, tokens trained on, parameters and head."""
    rows = {label: {**{f"held-out loss at {mark} s": loss_at(run["curve"], mark) for mark in marks},
                    "tokens/s": run["tokens_per_s"], "steps": run["steps"], "tokens trained on": run["tokens_seen"],
                    "parameters": run["parameters"], "vocabulary": run["vocabulary"]}
            for label, run in artefact["results"]["runs"].items()}
    return pd.DataFrame(rows).T


def learning_speed_floors(artefact: dict) -> dict:
    """The issue floors, checked on the artefact at its last mark: packed + recipe against the starter's way
    (at least 1.5 nats lower, at least as many tokens/s), and the compact head against the full one (at least
    0.3 nats lower, at least 3x the tokens/s)."""
    runs, end = artefact["results"]["runs"], artefact["config"]["train_seconds"]
    starter, full, compact = runs[STARTER_WAY], runs[PACKED_FULL], runs[PACKED_COMPACT]
    packed_gain = loss_at(starter["curve"], end) - loss_at(full["curve"], end)
    compact_gain = loss_at(full["curve"], end) - loss_at(compact["curve"], end)
    return {"packed_loss_gain": packed_gain, "packed_speed_ratio": full["tokens_per_s"] / starter["tokens_per_s"],
            "compact_loss_gain": compact_gain, "compact_speed_ratio": compact["tokens_per_s"] / full["tokens_per_s"],
            "packed_floor_met": packed_gain >= 1.5 and full["tokens_per_s"] >= starter["tokens_per_s"],
            "compact_floor_met": compact_gain >= 0.3 and compact["tokens_per_s"] >= 3 * full["tokens_per_s"]}


def learning_speed_summary(artefact: dict) -> str:
    """The benchmark's findings in two sentences, computed from the artefact."""
    floors, end = learning_speed_floors(artefact), artefact["config"]["train_seconds"]
    return (f"After {end:g} s of training, packed streams with the modern recipe end "
            f"{floors['packed_loss_gain']:.2f} nats below the starter's way at {floors['packed_speed_ratio']:.1f}x "
            f"its tokens/s; a compact head ends {floors['compact_loss_gain']:.2f} nats below the full head at "
            f"{floors['compact_speed_ratio']:.1f}x its tokens/s.")


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

    On a GPU, the CUDA allocator's peak. On the CPU, the peak of torch's profiler memory
    timeline, which records every tensor allocated and freed: what the estimate counts,
    without the allocator's own slack or the libraries' pages that a process's resident
    memory also holds.
    """
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        work()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - before
    with quiet_profiler(activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True, record_shapes=True,
                        with_stack=True) as profile:
        work()
    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
        # Its successor, torch.cuda.memory's snapshots, records CUDA memory only.
        warnings.simplefilter("ignore", FutureWarning)
        path = Path(folder) / "timeline.json"
        profile.export_memory_timeline(str(path), device="cpu")
        _, sizes = json.loads(path.read_text())
    return int(max(sum(row) for row in sizes))


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
                        "state, activations, logits): the profiler's memory timeline on the CPU, the CUDA "
                        "allocator's peak on a GPU"}
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


# ---------------------------------------------------------------- training throughput per preset, precision, compile


def matmul_peak_flops(device, precision: str, size: int = 2048, repeats: int = 5) -> float:
    """The device's practical peak in a precision: FLOP/s of a large square matrix product."""
    dtype = torch.float32 if precision == "fp32" else AUTOCAST_DTYPES[precision]
    a, b = (torch.randn(size, size, device=device).to(dtype) for _ in range(2))
    (a @ b).sum().item()  # warm up
    started = clock(device)
    for _ in range(repeats):
        product = a @ b
    product.sum().item()
    return 2 * size ** 3 * repeats / (clock(device) - started)


def flops_per_token(config: TransformerConfig, block_size: int, num_classes: int) -> float:
    """Training FLOPs per token (forward and backward): 6 per weight a token meets in a matrix product
    (the blocks' weights and the output layer's), and 12 L T d for the attention scores (nanoGPT's count)."""
    with torch.device("meta"):
        model = build_model("transformer", **asdict(config))
    block_weights = sum(p.numel() for p in model.blocks.parameters())
    return 6 * (block_weights + config.d_model * num_classes) + 12 * config.n_blocks * block_size * config.d_model


def training_throughput(config: TransformerConfig, corpus, *, device, precision: str, compile: bool,
                        batch_size: int, grad_accum_steps: int = 1, steps: int = 8, warmup_steps: int = 3,
                        vocab_ids=None, seed: int = 0) -> dict:
    """Tokens/s of real training steps (the median after warm-up steps, which also pay for compiling),
    with the FLOPs they stand for and the peak memory (CUDA)."""
    seed_everything(seed)
    model = build_model("transformer", **asdict(config), vocab_ids=vocab_ids).to(device)
    if torch.device(device).type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    history = train_model(model, corpus, batch_size=batch_size, max_steps=warmup_steps + steps, precision=precision,
                          compile=compile, grad_accum_steps=grad_accum_steps, seed=seed, progress=False)
    tokens_per_s = float(history["tokens_per_s"].iloc[warmup_steps:].median())
    flops = flops_per_token(config, corpus.block_size, model.num_classes)
    return {"tokens_per_s": tokens_per_s, "flops_per_token": flops, "achieved_tflops": tokens_per_s * flops / 1e12,
            "precision": history.attrs["precision"], "compiled": history.attrs["compiled"],
            "parameters": count_parameters(model), "vocabulary": describe_vocabulary(model),
            "peak_memory_gb": (torch.cuda.max_memory_allocated() / 1e9 if torch.device(device).type == "cuda"
                               else None)}


def throughput_benchmark(configs: dict, corpus, *, device, precisions, compile_options=(False, True),
                         batch_size: int, grad_accum_steps: int = 1, vocab_ids=None, preset: str = "benchmark",
                         path=None) -> dict:
    """Training tokens/s and model FLOPs utilization of each Transformer in `configs`, per precision, with
    and without torch.compile. MFU is measured FLOP/s over the device's measured matrix-product peak
    in the same precision. Writes artefacts/throughput_<device type>.json (or `path`) and returns it."""
    peaks = {precision: matmul_peak_flops(device, precision) for precision in precisions}
    rows = []
    for name, config in configs.items():
        for precision in precisions:
            for compile in compile_options:
                row = training_throughput(config, corpus, device=device, precision=precision, compile=compile,
                                          batch_size=batch_size, grad_accum_steps=grad_accum_steps,
                                          vocab_ids=vocab_ids)
                row.update(model=name, requested_compile=compile, mfu=row["achieved_tflops"] * 1e12 / peaks[precision])
                rows.append(row)
                print(f"{name:<12} {precision} {'compiled' if row['compiled'] else 'eager':<8} "
                      f"{row['tokens_per_s']:>10,.0f} tokens/s  MFU {row['mfu']:.1%}", flush=True)
    config = {"models": {name: asdict(config) for name, config in configs.items()}, "batch_size": batch_size,
              "block_size": corpus.block_size, "grad_accum_steps": grad_accum_steps,
              "peak_tflops": {precision: peak / 1e12 for precision, peak in peaks.items()},
              "peak": "a 2048 x 2048 matrix product, measured in each precision"}
    name = f"throughput_{torch.device(device).type}"
    written = write_artefact(name, preset=preset, config=config, results={"rows": rows}, device=device, path=path)
    return read_artefact(written)


def throughput_table(artefact: dict) -> pd.DataFrame:
    """Tokens/s, MFU and (on a GPU) peak memory per preset, precision and compile, from throughput_<device>.json."""
    table = pd.DataFrame(artefact["results"]["rows"])
    table["mode"] = table["compiled"].map({True: "compiled", False: "eager"})
    return table.set_index(["model", "precision", "mode"])[["tokens_per_s", "mfu", "achieved_tflops",
                                                            "peak_memory_gb"]]
