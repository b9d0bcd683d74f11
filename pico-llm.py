#!/usr/bin/env python3
"""pico-llm from the command line: a thin front door over picollm_helpers.

Accepts the original starter's flags. The sanity check from the course notes:

    OMP_NUM_THREADS=1 python3 pico-llm.py --tinystories_weight 0.0 --input_files 3seqs.txt \\
        --block_size 32 --max_steps_per_epoch 1 --kgram_k 2 --embed_size 64 --device_id cpu
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
import sys

import picollm_helpers as h

SAMPLE_SETTINGS = [("greedy", None), ("top-p 0.95", 0.95), ("top-p 1.0", 1.0)]
DEFAULT_COMPARISON_STEPS = 20  # the course notes compared the designs over 20 mini-batches


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Train small language models (k-gram MLP, LSTM, Transformer) on TinyStories and/or your "
                    "own text, then sample from them.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    data = parser.add_argument_group("data")
    data.add_argument("--input_files", nargs="*", default=[],
                      help="Text files, one training example per line. A bare name not found here is looked "
                           "up in the bundle's data/ folder (e.g. 3seqs.txt).")
    data.add_argument("--input_dir", default=None, help="A folder whose *.txt files (recursively) are read "
                                                         "like --input_files, e.g. data/custom_corpus.")
    data.add_argument("--limit_custom_examples", type=int, default=None,
                      help="Keep only the first N lines of --input_files/--input_dir.")
    data.add_argument("--tinystories_weight", type=float, default=0.5,
                      help="Probability that a training draw comes from TinyStories; 0 skips TinyStories.")
    data.add_argument("--tinystories_stories", type=int, default=20_000,
                      help="How many TinyStories stories to stream from the Hugging Face hub.")
    data.add_argument("--tinystories_path", default=None,
                      help="A local TinyStories file (.txt with <|endoftext|> separators or one story a line, "
                           ".jsonl or .parquet with a 'text' field) used instead of the hub.")
    data.add_argument("--block_size", type=int, default=1024, help="Tokens kept per sequence (at least 2).")
    data.add_argument("--test_fraction", type=float, default=0.0,
                      help="Fraction of each source held out for a test loss (seeded split).")

    models = parser.add_argument_group("models")
    models.add_argument("--models", nargs="+", default=["kgram", "lstm"], choices=list(h.MODEL_FAMILIES),
                        help="Which model families to train.")
    models.add_argument("--embed_size", type=int, default=1024, help="Embedding (and hidden) size of the k-gram "
                                                                     "MLP and the LSTM.")
    models.add_argument("--kgram_k", type=int, default=3, help="Context tokens the k-gram MLP sees.")
    models.add_argument("--kgram_chunk_size", type=int, default=1024,
                        help="Positions the k-gram MLP processes at once (bounds its peak memory).")
    models.add_argument("--kgram_variant", default="embedding", choices=[*h.KGramMLPSeqModel.VARIANTS, "compare"],
                        help="The k-gram MLP's input design; 'compare' trains all three alike, times the "
                             "starter's loop, prints the table and writes artefacts/kgram_comparison.json.")
    models.add_argument("--num_inner_mlp_layers", type=int, default=1, help="Hidden Linear+SiLU blocks of the "
                                                                            "k-gram MLP.")
    models.add_argument("--transformer_variant", default="GPT-oss", choices=list(h.TRANSFORMER_PRESETS),
                        help="Transformer preset used when 'transformer' is among --models.")
    models.add_argument("--enable_transformer_gptoss", action="store_true",
                        help="Also train the GPT-oss Transformer (the course notes' flag).")

    training = parser.add_argument_group("training")
    training.add_argument("--num_epochs", type=int, default=3)
    training.add_argument("--max_steps_per_epoch", type=int, default=None,
                          help="Stop each epoch after this many optimizer steps.")
    training.add_argument("--batch_size", type=int, default=16)
    training.add_argument("--learning_rate", type=float, default=1e-3)
    training.add_argument("--seed", type=int, default=0, help="Seeds data draws, weights and samples.")
    training.add_argument("--device_id", default="cuda:0",
                          help="Torch device; falls back to the CPU with a note when CUDA is absent.")
    training.add_argument("--prompt", default="Once upon a", help="Text the samples continue.")
    training.add_argument("--max_new_tokens", type=int, default=20, help="Tokens generated per sample.")

    experiments = parser.add_argument_group("experiments (each writes a measured artefact)")
    experiments.add_argument("--collect_transformer_metrics", action="store_true",
                             help="Train every Transformer preset (shrunk by --preset) and the LSTM on the same "
                                  "batches; write average loss, tokens/s, wall seconds, parameters and the KV-cache "
                                  "speed-up at 200 new tokens to artefacts/transformer_metrics.json.")
    experiments.add_argument("--custom_sweep_log", metavar="PATH",
                             help="Run the corpus-size sweep of notebook 05 (LSTM and GPT-oss on 3, 63, 123 and "
                                  "185 lines of --input_dir) and write it to PATH, resuming an interrupted run.")
    experiments.add_argument("--preset", choices=list(h.RUN_PRESETS), default=None,
                             help="Run preset sizing the experiments (default: $PICOLLM_PRESET, else cpu or gpu).")
    return parser


def model_config(family: str, args, vocab_size: int) -> dict:
    """The constructor arguments of one family, taken from the command line."""
    if family == "kgram":
        return dict(vocab_size=vocab_size, k=args.kgram_k, embed_size=args.embed_size,
                    num_inner_layers=args.num_inner_mlp_layers, chunk_size=args.kgram_chunk_size,
                    variant=args.kgram_variant)
    if family == "lstm":
        return dict(vocab_size=vocab_size, embed_size=args.embed_size, hidden_size=args.embed_size)
    config = h.transformer_config(args.transformer_variant, vocab_size=vocab_size,
                                  max_seq_len=max(args.block_size, 256))
    return asdict(config)


def train_and_sample(family: str, args, corpus: h.Corpus, enc, device) -> None:
    h.seed_everything(args.seed)
    model = h.build_model(family, **model_config(family, args, enc.n_vocab)).to(device)
    label = args.transformer_variant if family == "transformer" else family
    print(f"\n== {label}: {h.count_parameters(model):,} parameters, {corpus.num_train} training sequences, "
          f"device {device}")
    history = h.train_model(model, corpus.train_loader(args.batch_size, args.seed), epochs=args.num_epochs,
                            learning_rate=args.learning_rate, max_steps_per_epoch=args.max_steps_per_epoch,
                            test_loader=corpus.test_loader(args.batch_size), name=label)
    for epoch, loss in h.epoch_losses(history).items():
        print(f"epoch {epoch}: loss {loss:.4f}")
    test_loss = history["test_loss"].dropna()
    if len(test_loss):
        print(f"test loss: {test_loss.iloc[-1]:.4f}")
    print(f"{history['tokens'].sum() / history['elapsed_s'].iloc[-1]:,.0f} tokens/s over "
          f"{history['elapsed_s'].iloc[-1]:.2f} s of training")
    print(f"samples from {args.prompt!r}:")
    for setting, top_p in SAMPLE_SETTINGS:
        text = h.generate_text(model, enc, args.prompt, args.max_new_tokens, top_p=top_p, seed=args.seed)
        print(f"  {setting:<11} {text!r}")


def compare_kgram_designs(args, corpus: h.Corpus, enc, device) -> None:
    """The three k-gram designs on identical settings, and the starter's loop, as in notebook 02."""
    steps = args.num_epochs * (args.max_steps_per_epoch or DEFAULT_COMPARISON_STEPS)
    artefact = h.kgram_design_comparison(
        corpus, enc.n_vocab, preset="command line", device=device, k=args.kgram_k, embed_size=args.embed_size,
        num_inner_layers=args.num_inner_mlp_layers, learning_rate=args.learning_rate, batch_size=args.batch_size,
        steps=steps, seed=args.seed, data=" ".join([*args.input_files, args.input_dir or ""]).strip())
    print(f"\n== k-gram designs, {steps} steps each (batch {args.batch_size})")
    print(h.kgram_comparison_table(artefact).to_string(float_format=lambda x: f"{x:,.3f}"))
    print(f"wrote {h.artefact_path('kgram_comparison')}")


def collect_transformer_metrics(args, corpus: h.Corpus, enc, device) -> None:
    """Notebook 03's benchmark: every preset and the LSTM on the same data, batches and seed."""
    run = h.get_run_preset(args.preset)
    steps = args.num_epochs * (args.max_steps_per_epoch or run.train_steps)
    lstm = ("lstm", dict(vocab_size=enc.n_vocab, embed_size=run.embed_size, hidden_size=run.embed_size))
    artefact = h.transformer_comparison(
        corpus, enc.n_vocab, preset=run.name, device=device, scale=run.transformer_scale,
        block_size=args.block_size, steps=steps, batch_size=args.batch_size, learning_rate=args.learning_rate,
        seed=args.seed, baselines={"LSTM": lstm}, prompt_ids=enc.encode(args.prompt),
        data=" ".join([*args.input_files, args.input_dir or ""]).strip())
    print(f"\n== Transformer presets ({run.name} scale {run.transformer_scale or 'full size'}), {steps} steps each")
    print(h.transformer_metrics_table(artefact).to_string(float_format=lambda x: f"{x:,.3f}"))
    print(f"wrote {h.artefact_path('transformer_metrics')}")


def run_custom_sweep(args, enc, device) -> None:
    """Notebook 05's corpus-size sweep on --input_dir, logged to --custom_sweep_log."""
    run = h.get_run_preset(args.preset)
    artefact = h.custom_data_sweep(enc, run, device=device, input_dir=args.input_dir or h.CUSTOM_CORPUS,
                                   prompt=args.prompt, seed=args.seed, path=args.custom_sweep_log)
    print(h.ok_runs(artefact)[["model", "sequences", "final_loss", "tokens_per_s"]].to_string(index=False))
    print(f"wrote {args.custom_sweep_log}")


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.enable_transformer_gptoss and "transformer" not in args.models:
        args.models.append("transformer")
        args.transformer_variant = "GPT-oss"
    try:
        device = h.pick_device(args.device_id)
        enc = h.get_tokenizer()
        h.seed_everything(args.seed)
        corpus = h.build_corpus(
            enc, args.block_size, tinystories_weight=args.tinystories_weight,
            tinystories_stories=args.tinystories_stories, tinystories_path=args.tinystories_path,
            input_files=args.input_files, input_dir=args.input_dir,
            limit_custom_examples=args.limit_custom_examples, test_fraction=args.test_fraction, seed=args.seed,
        )
        if args.collect_transformer_metrics:
            collect_transformer_metrics(args, corpus, enc, device)
        if args.custom_sweep_log:
            run_custom_sweep(args, enc, device)
        if args.collect_transformer_metrics or args.custom_sweep_log:
            return 0
        for family in args.models:
            if family == "kgram" and args.kgram_variant == "compare":
                compare_kgram_designs(args, corpus, enc, device)
            else:
                train_and_sample(family, args, corpus, enc, device)
    except (h.InputError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
