#!/usr/bin/env python3
"""Training throughput of every Transformer preset: tokens/s and model FLOPs utilization (MFU), per
precision, with and without torch.compile.

On a CUDA GPU the presets train at full size on the gpu preset's batch (64 x 256 tokens, with
its gradient accumulation), in bf16 (fp16 where the GPU has no bf16) and fp32; on the CPU at the
cpu preset's scale (64-token windows of the custom corpus, a compact head), in fp32 and bf16.
MFU divides the FLOP/s the training step achieves (6 per weight per token, plus attention) by
the FLOP/s a large matrix product reaches on the same device in the same precision. Writes
artefacts/throughput_<device>.json and prints the table.

    python benchmarks/throughput.py                 # every preset, both precisions, eager and compiled
    python benchmarks/throughput.py --no_compile    # eager only (quicker)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import picollm_helpers as h


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--device", default=None, help="Torch device (default: the best one present).")
    parser.add_argument("--no_compile", action="store_true", help="Measure eager mode only.")
    parser.add_argument("--output", type=Path, default=None,
                        help="Where to write the artefact (default artefacts/throughput_<device>.json).")
    args = parser.parse_args(argv)
    device = h.pick_device(args.device)
    run = h.get_run_preset("gpu" if device.type == "cuda" else "cpu")
    precisions = (h.resolve_precision("auto", device), "fp32") if device.type == "cuda" else ("fp32", "bf16")
    corpus = h.build_corpus(h.get_tokenizer(), run.block_size,
                            h.TrainingText(base_weight=0.0, input_dir=h.CUSTOM_CORPUS))
    configs = {name: h.transformer_config(name, run.transformer_scale, max_seq_len=run.block_size)
               for name in h.TRANSFORMER_PRESETS}
    arithmetics = [h.Arithmetic(precision=precision, grad_accum_steps=run.grad_accum_steps, compile=compile)
                   for precision in precisions for compile in ((False,) if args.no_compile else (False, True))]
    artefact = h.throughput_benchmark(configs, corpus, arithmetics, device=device, batch_size=run.batch_size,
                                      vocab_ids=h.vocab_ids_for(corpus, run.vocab, run.min_count), preset=run.name,
                                      path=args.output)
    print(h.throughput_table(artefact).to_string(float_format=lambda x: f"{x:,.3f}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
