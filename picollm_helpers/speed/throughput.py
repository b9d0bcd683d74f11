"""Training throughput per Transformer preset, number format and torch.compile, against this machine's measured
matrix-multiply peak."""

from __future__ import annotations

from dataclasses import asdict

import pandas as pd
import torch

from ..artefacts import read_artefact, write_artefact
from ..device import AUTOCAST_DTYPES, seed_everything
from ..models import build_model, count_parameters, describe_vocabulary, flops_per_token
from ..presets import TransformerConfig
from ..training import Arithmetic, Budget, TrainingRun, train_model
from .step_costs import clock


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


def training_throughput(config: TransformerConfig, corpus, arithmetic: Arithmetic, *, device, batch_size: int,
                        vocab_ids=None, steps: int = 8, warmup_steps: int = 3) -> dict:
    """Tokens/s of real training steps computed as `arithmetic` says (the median after warm-up steps, which also pay
    for compiling), with the FLOPs they stand for and the peak memory (CUDA)."""
    seed_everything(0)
    model = build_model("transformer", **asdict(config), vocab_ids=vocab_ids).to(device)
    if torch.device(device).type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    run = TrainingRun(budget=Budget(max_steps=warmup_steps + steps), batch_size=batch_size, arithmetic=arithmetic)
    history = train_model(model, corpus, run, progress=False)
    tokens_per_s = float(history["tokens_per_s"].iloc[warmup_steps:].median())
    flops = flops_per_token(config, corpus.block_size, model.num_classes)
    return {"tokens_per_s": tokens_per_s, "flops_per_token": flops, "achieved_tflops": tokens_per_s * flops / 1e12,
            "precision": history.attrs["precision"], "compiled": history.attrs["compiled"],
            "parameters": count_parameters(model), "vocabulary": describe_vocabulary(model),
            "peak_memory_gb": (torch.cuda.max_memory_allocated() / 1e9 if torch.device(device).type == "cuda"
                               else None)}


def throughput_benchmark(configs: dict, corpus, arithmetics: list[Arithmetic], *, device, batch_size: int,
                         vocab_ids=None, preset: str = "benchmark", path=None) -> dict:
    """Training tokens/s and model FLOPs utilization of each Transformer in `configs`, each way of computing in
    `arithmetics` (precisions, with and without torch.compile). MFU is measured FLOP/s over the device's measured
    matrix-product peak in the same precision. Writes artefacts/throughput_<device type>.json (or `path`) and
    returns it."""
    precisions = list(dict.fromkeys(arithmetic.precision for arithmetic in arithmetics))
    peaks = {precision: matmul_peak_flops(device, precision) for precision in precisions}
    rows = []
    for name, config in configs.items():
        for arithmetic in arithmetics:
            row = training_throughput(config, corpus, arithmetic, device=device, batch_size=batch_size,
                                      vocab_ids=vocab_ids)
            row.update(model=name, requested_compile=arithmetic.compile,
                       mfu=row["achieved_tflops"] * 1e12 / peaks[arithmetic.precision])
            rows.append(row)
            print(f"{name:<12} {arithmetic.precision} {'compiled' if row['compiled'] else 'eager':<8} "
                  f"{row['tokens_per_s']:>10,.0f} tokens/s  MFU {row['mfu']:.1%}", flush=True)
    config = {"models": {name: asdict(config) for name, config in configs.items()}, "batch_size": batch_size,
              "block_size": corpus.block_size, "grad_accum_steps": arithmetics[0].grad_accum_steps,
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
