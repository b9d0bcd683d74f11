"""The command line (`pico-llm.py`, or `pico-llm` once installed): a thin front door over the helpers.

It accepts the original starter's flags. A run is one of two kinds:

  the bundle's (the default)  packed token streams, AdamW with warm-up and cosine decay, for
                              --max_steps steps or --train_seconds seconds (one pass over the
                              training tokens if neither is given);
  the starter's               counted in epochs (--num_epochs, --max_steps_per_epoch), as the
                              course notes' commands are: one padded example per line or story,
                              plain Adam at a constant rate.

Every choice has its own flag (--packing, --optimizer, --schedule, ...) that overrides the
kind's default. Every flag is checked before any data is read or any model is built.

Under torchrun (`torchrun --nproc_per_node N pico-llm.py ...`) the same command trains
data-parallel: --batch_size is the global batch, shared among the processes, and only rank 0
prints and writes.

A run given --save_checkpoint keeps its whole training state there: every --checkpoint_every
steps, when Ctrl-C or SIGTERM stops it (after the step under way), and at its end. The same
command plus --resume PATH goes on from it. Exit status: 0 done, 2 bad input (one line, nothing
written), 130 or 143 stopped by SIGINT or SIGTERM, the checkpoint written.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import sys
import tempfile
import time

import torch
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from .artefacts import artefact_path, provenance, write_json_atomically
from .device import PRECISIONS, is_main_process, pick_device, resolve_precision, seed_everything
from .studies import (CUSTOM_CORPUS, custom_data_sweep, kgram_comparison_table, kgram_design_comparison, runs_table,
                      transformer_comparison, transformer_metrics_table)
from .counts import VALIDATION_FRACTION, fit_count_models, mix_with_counts
from .heads import MIN_COUNT_PER_MILLION, VOCABULARIES, resolve_vocab, vocab_ids_for
from .models import KGramMLPSeqModel, MODEL_FAMILIES, build_model, count_parameters, describe_vocabulary
from .corpus import build_corpus
from .sources import BASE_CORPORA, HELDOUT_WORK, resolve_data_path
from .parallel import (BACKENDS, DEFAULT_TIMEOUT_S, check_backend, launched_by_torchrun, launched_processes,
                       start_data_parallel, stop_data_parallel)
from .presets import RUN_PRESETS, TRANSFORMER_PRESETS, InputError, TransformerConfig, get_run_preset, transformer_config
from .resume import TrainingStopped, open_resumable, resume_point, run_settings
from .sampling import generate_text
from .speed import SpeedRun
from .tokenizer import get_tokenizer
from .training import (OPTIMIZERS, SCHEDULES, STARTER_RECIPE, Recipe, ReplayedRecipe, check_batch_split, epoch_losses,
                       evaluate, evaluate_each, run_summary, train_model)

SAMPLE_SETTINGS = [("greedy", None), ("top-p 0.95", 0.95), ("top-p 1.0", 1.0)]
STARTER_BATCH = 16
PACKED_CPU_BATCH = 8  # the recipe sweep (benchmarks/recipe_defaults.py): learned most per second on two CPU cores
STARTER_EPOCHS = 3
DEFAULT_COMPARISON_STEPS = 20  # the course notes compared the k-gram designs over 20 mini-batches


class RememberFlag(argparse.Action):
    """Store the value, and which of the option's names was typed (`<dest>_flag`), so that a message
    names the flag as the user wrote it (--base_weight, or the starter's --tinystories_weight)."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values)
        setattr(namespace, f"{self.dest}_flag", option_string)


def count_or_auto(text: str) -> int | str:
    """A whole number, or the word auto."""
    try:
        return text if text == "auto" else int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither a whole number nor 'auto'") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pico-llm",
        description="Train small language models (k-gram MLP, LSTM, Transformer) on TinyStories and/or your "
                    "own text, then sample from them. Runs counted in epochs (--num_epochs, "
                    "--max_steps_per_epoch) are the starter's: one padded example per line and plain Adam. "
                    "Other runs use packed token streams and AdamW with warm-up and cosine decay.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    data = parser.add_argument_group("data")
    data.add_argument("--input_files", nargs="*", default=[],
                      help="Text files to train on, one example per line. A bare name not found here is looked "
                           "up in the bundle's data/ folder (e.g. 3seqs.txt).")
    data.add_argument("--input_dir", default=None, help="A folder whose *.txt files (recursively) are read "
                                                         "like --input_files, e.g. data/custom_corpus.")
    data.add_argument("--eval_files", nargs="*", default=None,
                      help="Held-out text files, never trained on: the run reports its loss on them (default: "
                           "The Winter's Tale, which no run trains on, when a packed run trains on the plays; "
                           "give the flag alone for none).")
    data.add_argument("--limit_custom_examples", type=int, default=None,
                      help="Keep only the first N lines of --input_files/--input_dir.")
    data.add_argument("--base_corpus", choices=BASE_CORPORA, default=None,
                      help="What every run trains on besides your own text: the public-domain plays the bundle ships "
                           "(the default; the same offline), or TinyStories from the Hugging Face hub or "
                           "--tinystories_path (the default when that is given; the plays when the hub is out of "
                           "reach).")
    data.add_argument("--base_weight", "--tinystories_weight", dest="base_weight", type=float, default=0.5,
                      action=RememberFlag,
                      help="Share of training windows (or draws) from the base corpus, the rest from "
                           "--input_files/--input_dir; 0 trains on your own text alone. --tinystories_weight is the "
                           "starter's name for it.")
    data.add_argument("--tinystories_stories", type=int, default=20_000,
                      help="How many TinyStories stories to stream from the Hugging Face hub.")
    data.add_argument("--tinystories_path", default=None,
                      help="A local TinyStories file (.txt with <|endoftext|> separators or one story a line, "
                           ".jsonl or .parquet with a 'text' field) used instead of the hub.")
    data.add_argument("--block_size", type=int, default=1024,
                      help="Tokens per training window (packed), or kept per example (--packing off); at least 2.")
    data.add_argument("--test_fraction", type=float, default=0.0,
                      help="Fraction of each source's examples (lines, stories) held out, by a seeded choice.")
    data.add_argument("--validation_fraction", type=float, default=VALIDATION_FRACTION,
                      help="With --counts: the share of the training examples (lines, stories) taken out of training "
                           "to choose the count model and its weight on (never the held-out text).")
    data.add_argument("--packing", choices=["on", "off"], default=None,
                      help="on: random windows of packed token streams, every position a target. off: the "
                           "starter's one padded example per line. Default: off for runs counted in epochs, else on.")

    models = parser.add_argument_group("models")
    models.add_argument("--models", nargs="+", default=["kgram", "lstm"], choices=list(MODEL_FAMILIES),
                        help="Which model families to train.")
    models.add_argument("--vocab", choices=VOCABULARIES, default="auto",
                        help="The models' embedding and output: all 50,257 GPT-2 ids, or the ids the training text "
                             "uses (--min_count times or more) plus one bucket for every other id. auto: the compact "
                             "one for packed runs on the CPU, where the head is most of a step, all ids elsewhere.")
    models.add_argument("--min_count", type=count_or_auto, default="auto",
                        help="With a compact head: how often an id must occur in the training text to be kept. auto: "
                             f"{MIN_COUNT_PER_MILLION} times per million training tokens (at least once).")
    models.add_argument("--counts", choices=["auto", "on", "off"], default="auto",
                        help="Mix each trained model with an n-gram count model of the same training text, "
                             "p = w p_model + (1 - w) p_counts, the count model's order and the weight w chosen on "
                             "validation lines taken out of training (--validation_fraction). auto: on for packed runs "
                             "that train on the base corpus, whose text is large enough to count; off: the model "
                             "alone. The run reports the model alone beside the mixture.")
    models.add_argument("--embed_size", type=int, default=1024, help="Embedding (and hidden) size of the k-gram "
                                                                     "MLP and the LSTM.")
    models.add_argument("--kgram_k", type=int, default=3, help="Context tokens the k-gram MLP sees.")
    models.add_argument("--kgram_chunk_size", type=int, default=1024,
                        help="Positions the k-gram MLP processes at once (bounds its peak memory).")
    models.add_argument("--kgram_variant", default="embedding", choices=[*KGramMLPSeqModel.VARIANTS, "compare"],
                        help="The k-gram MLP's input design; 'compare' trains all three alike, times the "
                             "starter's loop, prints the table and writes artefacts/kgram_comparison.json.")
    models.add_argument("--num_inner_mlp_layers", type=int, default=1, help="Hidden Linear+SiLU blocks of the "
                                                                            "k-gram MLP.")
    models.add_argument("--transformer_variant", default="GPT-oss", choices=list(TRANSFORMER_PRESETS),
                        help="Transformer preset used when 'transformer' is among --models.")
    models.add_argument("--d_model", type=int, default=None, help="Resize the Transformer preset: model width.")
    models.add_argument("--n_blocks", type=int, default=None, help="Resize the Transformer preset: blocks.")
    models.add_argument("--n_heads", type=int, default=None, help="Resize the Transformer preset: attention heads.")
    models.add_argument("--d_ff", type=int, default=None,
                        help="Resize the Transformer preset: feed-forward width (default: the preset's ratio "
                             "to d_model).")
    models.add_argument("--enable_transformer_gptoss", action="store_true",
                        help="Also train the GPT-oss Transformer (the course notes' flag).")

    training = parser.add_argument_group("training (defaults: the bundle's recipe; the starter's for epoch runs)")
    training.add_argument("--max_steps", type=int, default=None, help="Train for this many optimizer steps.")
    training.add_argument("--train_seconds", type=float, default=None,
                          help="Train until this many seconds of training have passed (evaluation not counted).")
    training.add_argument("--num_epochs", type=int, default=None,
                          help=f"The starter's epochs (default {STARTER_EPOCHS} in an epoch run).")
    training.add_argument("--max_steps_per_epoch", type=int, default=None,
                          help="Stop each of the starter's epochs after this many optimizer steps.")
    training.add_argument("--batch_size", type=int, default=None,
                          help=f"Windows (or examples) per step, the global batch under torchrun (default: "
                               f"{PACKED_CPU_BATCH} for packed runs on the CPU, where the recipe sweep found them to "
                               f"learn most per second, else the starter's {STARTER_BATCH}).")
    training.add_argument("--optimizer", choices=OPTIMIZERS, default=None,
                          help="adamw (weight decay on matrices only) or adam (the starter's).")
    training.add_argument("--learning_rate", type=float, default=None,
                          help=f"Peak learning rate (default {Recipe().learning_rate:g}; the starter's "
                               f"{STARTER_RECIPE.learning_rate:g}).")
    training.add_argument("--schedule", choices=SCHEDULES, default=None,
                          help="cosine: warm-up, then cosine decay to a tenth of the peak. constant: the starter's.")
    training.add_argument("--warmup_steps", type=int, default=None,
                          help="Linear warm-up steps (default: a twentieth of the run; 0 in an epoch run).")
    training.add_argument("--weight_decay", type=float, default=None,
                          help=f"AdamW weight decay (default {Recipe().weight_decay:g}; 0 in an epoch run).")
    training.add_argument("--grad_clip", type=float, default=None,
                          help=f"Clip the gradient norm to this (default {Recipe().grad_clip:g}); 0 turns it off "
                               "(the default in an epoch run).")
    training.add_argument("--grad_accum_steps", type=int, default=1,
                          help="Split each batch into this many micro-batches whose gradients add up: the same "
                               "step in less memory.")
    training.add_argument("--precision", choices=PRECISIONS, default="auto",
                          help="Number format: auto is bf16 on CUDA GPUs that have it, fp16 (with a gradient "
                               "scaler) on those that do not, fp32 on the CPU and MPS.")
    training.add_argument("--compile", action="store_true",
                          help="Compile the training step with torch.compile (falls back with a note where it "
                               "fails).")
    training.add_argument("--seed", type=int, default=0, help="Seeds data draws, weights and samples.")
    training.add_argument("--device_id", default="cuda:0",
                          help="Torch device; falls back to the CPU with a note when CUDA is absent. Under "
                               "torchrun each process takes its own GPU (or the CPU).")
    training.add_argument("--dist_backend", choices=BACKENDS, default="auto",
                          help="Under torchrun: how processes exchange gradients (auto: NCCL on GPUs, gloo on CPUs).")
    training.add_argument("--dist_timeout", type=float, default=DEFAULT_TIMEOUT_S,
                          help="Under torchrun: seconds a process waits for the others before the run ends with an "
                               "error.")
    training.add_argument("--prompt", default="Once upon a", help="Text the samples continue.")
    training.add_argument("--max_new_tokens", type=int, default=20, help="Tokens generated per sample.")

    outputs = parser.add_argument_group("outputs")
    outputs.add_argument("--save_checkpoint", metavar="PATH", default=None,
                         help="Save the model and its training state there at the end, every --checkpoint_every "
                              "steps, and when Ctrl-C or SIGTERM stops the run (load the model with "
                              "picollm_helpers.load_checkpoint; go on with --resume); with several models, one file "
                              "each, named PATH's stem plus the model's name.")
    outputs.add_argument("--checkpoint_every", metavar="N", type=int, default=None,
                         help="Also write the checkpoint every N optimizer steps, atomically: a run killed at any "
                              "moment leaves its last checkpoint whole.")
    outputs.add_argument("--resume", metavar="PATH", default=None,
                         help="Go on with an interrupted run from its checkpoint: give the same command plus "
                              "--resume PATH. Checkpoints go on being written to --save_checkpoint, or to PATH itself "
                              "when --save_checkpoint is not given. With several --models, each goes on from its own "
                              "file (named as --save_checkpoint names them); one without a file yet starts afresh.")
    outputs.add_argument("--metrics_json", metavar="PATH", default=None,
                         help="Write the run's held-out and training loss, steps, tokens, tokens/s, seconds, "
                              "samples and full configuration there as JSON.")
    outputs.add_argument("--rerun", metavar="PATH", default=None,
                         help="Train again the run that a --metrics_json file recorded: its flags (other flags are "
                              "ignored, but for this command's outputs), and, where it was budgeted in seconds, the "
                              "steps it took at the learning rates it took them at, so that on the same machine it "
                              "ends with the same losses.")

    experiments = parser.add_argument_group("experiments (each writes a measured artefact)")
    experiments.add_argument("--collect_transformer_metrics", action="store_true",
                             help="Train every Transformer preset (shrunk by --preset) and the LSTM on the same "
                                  "batches; write average loss, tokens/s, wall seconds, parameters and the KV-cache "
                                  "speed-up at 200 new tokens to artefacts/transformer_metrics.json.")
    experiments.add_argument("--custom_sweep_log", metavar="PATH",
                             help="Run the corpus-size sweep of notebook 05 (LSTM and GPT-oss on 3, 63, 123 and "
                                  "185 lines of --input_dir) and write it to PATH, resuming an interrupted run.")
    experiments.add_argument("--preset", choices=list(RUN_PRESETS), default=None,
                             help="Run preset sizing the experiments (default: $PICOLLM_PRESET, else cpu or gpu).")
    return parser


# ---------------------------------------------------------------- checking every flag first


@dataclass
class RunPlan:
    """What the flags ask for, resolved: the kind of run, its recipe and its budget."""

    packing: bool
    recipe: Recipe
    max_steps: int | None
    train_seconds: float | None
    num_epochs: int | None
    steps_per_epoch: int | None
    counts: bool = False  # mixed with a count model of the training text
    replay: Replay | None = None  # a recorded run trained again (--rerun)

    @property
    def counted_in_epochs(self) -> bool:
        return self.num_epochs is not None


def fail(message: str) -> None:
    raise InputError(message)


def check_numbers(args) -> None:
    """Every number's range, named by its flag."""
    at_least_one = ["batch_size", "max_new_tokens", "embed_size", "kgram_k", "kgram_chunk_size",
                    "num_epochs", "max_steps_per_epoch", "max_steps", "limit_custom_examples", "d_model",
                    "n_blocks", "n_heads", "d_ff", "grad_accum_steps", "checkpoint_every"]
    for name in at_least_one + ([] if args.min_count == "auto" else ["min_count"]):
        value = getattr(args, name)
        if value is not None and value < 1:
            fail(f"--{name} {value}: it must be at least 1.")
    if args.block_size < 2:
        fail(f"--block_size {args.block_size} is too small: next-token prediction needs at least 2 tokens per "
             "sequence. Use --block_size 2 or more (the sanity check uses 32).")
    if args.num_inner_mlp_layers < 0 or args.tinystories_stories < 0:
        fail("--num_inner_mlp_layers and --tinystories_stories must be 0 or more.")
    if not 0.0 <= args.base_weight <= 1.0:
        fail(f"{getattr(args, 'base_weight_flag', '--base_weight')} {args.base_weight} must lie in [0, 1]; 0 trains "
             "on your own text alone.")
    if not 0.0 <= args.test_fraction < 1.0:
        fail(f"--test_fraction {args.test_fraction} must lie in [0, 1): 0.1 holds out a tenth.")
    if args.train_seconds is not None and not args.train_seconds > 0:
        fail(f"--train_seconds {args.train_seconds} must be above 0: it is how many seconds to train.")
    if not args.prompt:
        fail("--prompt is empty: give at least one character of text to continue.")
    if not args.dist_timeout > 0:
        fail(f"--dist_timeout {args.dist_timeout} must be above 0 seconds.")
    if args.batch_size is not None:
        check_batch_split(args.batch_size, args.grad_accum_steps, launched_processes())


def check_paths(args) -> None:
    """Every input exists (bare names may live in data/); outputs are not folders."""
    for path in [*args.input_files, *(args.eval_files or []), *filter(None, [args.tinystories_path])]:
        if resolve_data_path(path).is_dir():
            fail(f"{path} is a folder: pass folders with --input_dir, files with --input_files or --eval_files.")
    if args.input_dir:
        resolve_data_path(args.input_dir)
    for flag in ("save_checkpoint", "resume", "metrics_json", "custom_sweep_log"):
        path = getattr(args, flag)
        if path is not None and Path(path).is_dir():
            fail(f"--{flag} {path} is a folder: give a file path, e.g. {Path(path) / 'run.pt'}.")
    for flag in ("save_checkpoint", "metrics_json", "custom_sweep_log"):
        if getattr(args, flag) is not None:
            check_writable(flag, Path(getattr(args, flag)))


def check_writable(flag: str, path: Path) -> None:
    """A file can be written beside `path` (its folder made if need be): found before training, not after it. Each
    process of a data-parallel run probes with a file of its own, which goes when it is closed."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path.parent):
            pass
    except OSError as error:
        fail(f"--{flag} {path}: cannot write there ({error.strerror or error}): give a path in a folder you can "
             "write to.")


def check_checkpoint_flags(args) -> None:
    """--checkpoint_every needs a file to write; --resume, a checkpoint to go on from; both apply to training runs."""
    if args.checkpoint_every is not None and not checkpoint_base(args):
        fail(f"--checkpoint_every {args.checkpoint_every} needs a file to write the checkpoints to: add "
             "--save_checkpoint run.pt.")
    if not args.resume:
        return
    if args.collect_transformer_metrics or args.custom_sweep_log:
        fail("--resume goes on with a training run; --collect_transformer_metrics starts afresh, and "
             "--custom_sweep_log resumes from its own log: leave --resume out.")
    wanted = [checkpoint_path(args.resume, args, model_label(family, args)) for family in args.models]
    if not any(path.is_file() for path in wanted):
        fail(f"--resume {args.resume}: no checkpoint at {' or '.join(map(str, wanted))}. Check the path, or leave "
             "--resume out to start a new run.")


def check_transformer(args) -> TransformerConfig:
    """The Transformer the flags describe (checked now; built later)."""
    try:
        return transformer_config(args.transformer_variant, **transformer_overrides(args))
    except ValueError as error:
        raise InputError(f"{error} (--d_model, --n_heads, --n_blocks, --d_ff)") from None


def transformer_overrides(args) -> dict:
    sizes = {name: getattr(args, name) for name in ("d_model", "n_blocks", "n_heads", "d_ff")}
    return {**{name: value for name, value in sizes.items() if value is not None},
            "max_seq_len": max(args.block_size, 256)}


def plan_run(args) -> RunPlan:
    """The kind of run, recipe and budget the flags ask for; contradictions are errors."""
    epoch_flags = args.num_epochs is not None or args.max_steps_per_epoch is not None
    budget_flags = args.max_steps is not None or args.train_seconds is not None
    if args.max_steps is not None and args.train_seconds is not None:
        fail("--max_steps and --train_seconds are two budgets: give one.")
    if epoch_flags and budget_flags:
        fail("--num_epochs/--max_steps_per_epoch count the starter's epochs; --max_steps/--train_seconds are "
             "budgets of their own: give one kind.")
    packing = (args.packing or ("off" if epoch_flags else "on")) == "on"
    if packing and epoch_flags:
        fail("--packing on draws windows without epochs: use --max_steps or --train_seconds instead of "
             "--num_epochs/--max_steps_per_epoch, or --packing off.")
    base = Recipe() if packing and not epoch_flags else STARTER_RECIPE
    flags = {"optimizer": args.optimizer, "learning_rate": args.learning_rate, "schedule": args.schedule,
             "warmup_steps": args.warmup_steps, "weight_decay": args.weight_decay}
    overrides = {name: value for name, value in flags.items() if value is not None}
    if args.grad_clip is not None:
        if args.grad_clip < 0:
            fail(f"--grad_clip {args.grad_clip} must be 0 (off) or more.")
        overrides["grad_clip"] = args.grad_clip or None
    recipe = replace(base, **overrides)
    if recipe.warmup_steps and args.max_steps is not None and recipe.warmup_steps >= args.max_steps:
        fail(f"--warmup_steps {recipe.warmup_steps} is longer than the run's --max_steps {args.max_steps}: "
             "lower --warmup_steps or train longer.")
    num_epochs = (args.num_epochs or STARTER_EPOCHS) if not packing and not budget_flags else None
    return RunPlan(packing, recipe, args.max_steps, args.train_seconds, num_epochs, args.max_steps_per_epoch,
                   counts=plan_counts(args, packing))


def plan_counts(args, packing: bool) -> bool:
    """Whether the trained models are mixed with counts: --counts on, or auto for packed runs on the base corpus."""
    if args.counts == "on" and not packing:
        fail("--counts on mixes a packed run's model with counts: leave it out of runs counted in the starter's "
             "epochs, or add --packing on.")
    if not 0.0 < args.validation_fraction < 1.0:
        fail(f"--validation_fraction {args.validation_fraction} must lie in (0, 1): 0.02 takes out a fiftieth of "
             "the training lines to choose the mixture on.")
    trains_on_base = args.base_weight > 0 or not has_own_text(args)
    return args.counts == "on" or (args.counts == "auto" and packing and trains_on_base)


def check_args(args) -> RunPlan:
    """Check every flag before any data is read or any model is built; the resolved plan."""
    if args.enable_transformer_gptoss and "transformer" not in args.models:
        args.models.append("transformer")
        args.transformer_variant = "GPT-oss"
    check_numbers(args)
    check_paths(args)
    check_checkpoint_flags(args)
    check_transformer(args)
    if launched_by_torchrun():
        check_backend(args.dist_backend)
    return plan_run(args)


def training_device(args, plan: RunPlan) -> torch.device:
    """The device this process trains on: its own under torchrun (joining the process group), else
    the one asked for; the precision and the batch are checked against it before any work."""
    device = start_data_parallel(args.dist_backend, args.dist_timeout) if launched_by_torchrun() \
        else pick_device(args.device_id)
    resolve_precision(args.precision, device)
    args.batch_size = resolve_batch_size(args.batch_size, plan.packing, device)
    check_batch_split(args.batch_size, args.grad_accum_steps, launched_processes())
    return device


def resolve_batch_size(batch_size: int | None, packing: bool, device) -> int:
    """--batch_size, or its default for the run: PACKED_CPU_BATCH for packed runs on the CPU, else the
    starter's STARTER_BATCH."""
    if batch_size is not None:
        return batch_size
    return PACKED_CPU_BATCH if packing and torch.device(device).type == "cpu" else STARTER_BATCH


def say(message: str = "") -> None:
    """Print, from the main process only (rank 0 of a data-parallel run)."""
    if is_main_process():
        print(message)


# ---------------------------------------------------------------- training and reporting


def model_config(family: str, args, vocab_size: int) -> dict:
    """The constructor arguments of one family, taken from the command line."""
    if family == "kgram":
        return dict(vocab_size=vocab_size, k=args.kgram_k, embed_size=args.embed_size,
                    num_inner_layers=args.num_inner_mlp_layers, chunk_size=args.kgram_chunk_size,
                    variant=args.kgram_variant)
    if family == "lstm":
        return dict(vocab_size=vocab_size, embed_size=args.embed_size, hidden_size=args.embed_size)
    return asdict(check_transformer(args))


def model_label(family: str, args) -> str:
    return args.transformer_variant if family == "transformer" else family


def run_budget(plan: RunPlan, corpus, batch_size: int) -> dict:
    """train_model's budget: the steps of the starter's epochs, the steps or seconds asked for, or one
    pass over the training tokens."""
    if plan.counted_in_epochs:
        per_epoch = plan.steps_per_epoch or math.ceil(corpus.num_train / batch_size)
        return {"max_steps": plan.num_epochs * per_epoch, "steps_per_epoch": per_epoch}
    if plan.max_steps is not None or plan.train_seconds is not None:
        return {"max_steps": plan.max_steps, "train_seconds": plan.train_seconds}
    tokens_per_step = batch_size * corpus.block_size
    return {"max_steps": max(1, math.ceil(corpus.num_train_tokens / tokens_per_step)) if corpus.packed
            else math.ceil(corpus.num_train / batch_size)}


def train_and_report(family: str, args, plan: RunPlan, corpus, enc, device, vocab_ids, counting: Counting | None,
                     resume_from: Path | None = None) -> dict:
    """Train one family (going on from `resume_from` when given), mix it with counts when the plan says so, print
    its losses and samples; what --metrics_json stores of it."""
    seed_everything(args.seed)
    model = build_model(family, **model_config(family, args, enc.n_vocab), vocab_ids=vocab_ids).to(device)
    label = model_label(family, args)
    data = (f"{corpus.num_train_tokens:,} training tokens of {corpus.trained_on}, packed" if corpus.packed
            else f"{corpus.num_train} training sequences of {corpus.trained_on}")
    say(f"\n== {label}: {count_parameters(model):,} parameters, vocabulary {describe_vocabulary(model)}, "
          f"{data}, device {device}")
    budget, recipe = run_budget(plan, corpus, args.batch_size), plan.recipe
    if plan.replay is not None:
        budget, recipe = plan.replay.budget_and_recipe(label, budget, recipe)
    checkpoint = checkpoint_path(checkpoint_base(args), args, label) if checkpoint_base(args) else None
    if resume_from is not None:
        say(f"going on from {resume_from}")
    spent = counting.seconds if counting and budget.get("train_seconds") else 0.0
    history = train_model(model, corpus, batch_size=args.batch_size, recipe=recipe, seed=args.seed,
                          precision=args.precision, grad_accum_steps=args.grad_accum_steps, compile=args.compile,
                          name=label, checkpoint_path=checkpoint, checkpoint_every=args.checkpoint_every,
                          resume_from=resume_from, checkpoint_metadata={"trained_on": corpus.trained_on},
                          seconds_spent=spent, **budget)
    if plan.counted_in_epochs:
        for epoch, loss in epoch_losses(history).items():
            say(f"epoch {epoch}: loss {loss:.4f}")
    summary = run_summary(history)
    resumed = f" (resumed at step {summary['resumed_from_step']})" if "resumed_from_step" in summary else ""
    fitting = f" (of them {spent:.1f} s fitting count models)" if spent else ""
    say(f"{summary['steps']} steps{resumed}, {summary['tokens_seen']:,} tokens in {summary['train_seconds']:.2f} s of "
          f"training{fitting}: {summary['tokens_per_s']:,.0f} tokens/s; final training loss {summary['train_loss']:.4f}")
    answer = mix_with_counts(model, counting.models, corpus.validation) if counting else model
    say(f"samples from {args.prompt!r}{' (the model mixed with counts)' if counting else ''}:")
    samples = {}
    for setting, top_p in SAMPLE_SETTINGS if is_main_process() else ():
        samples[setting] = generate_text(answer, enc, args.prompt, args.max_new_tokens, top_p=top_p, seed=args.seed,
                                         precision=summary["precision"])
        say(f"  {setting:<11} {samples[setting]!r}")
    report = {**summary, "samples": samples, "model": {"family": family, "parameters": count_parameters(model),
                                                       "vocabulary": describe_vocabulary(model), **model.config}}
    if summary["heldout_loss"] is not None:
        report.update(report_heldout(model, answer, corpus, summary))
    if budget.get("train_seconds") or isinstance(recipe, ReplayedRecipe):  # what --rerun needs to take the same steps
        report["learning_rates"] = history["learning_rate"].tolist()
    if checkpoint is not None:
        say(f"saved {checkpoint}")
    return report


class Counting:
    """The count models a run mixes its models with, fitted on its training streams, and the seconds that took."""

    def __init__(self, corpus):
        started = time.perf_counter()
        self.models = fit_count_models(corpus)
        self.seconds = time.perf_counter() - started
        say(f"counted {corpus.num_train_tokens:,} training tokens into {len(self.models)} count models "
            f"(orders {', '.join(str(m.order) for m in self.models)}) in {self.seconds:.1f} s; "
            f"{corpus.validation.num_heldout_tokens:,} validation tokens taken out to choose the mixture on")


def loss_words(loss) -> str:
    return f"{loss.nats_per_token:.4f} nats/token, {loss.bits_per_char:.4f} bits/character"


def report_heldout(model, answer, corpus, summary: dict) -> dict:
    """Print the held-out loss of the run's answer (the mixture, with counts), over every held-out file and each on
    its own, and the model alone beside it; what the metrics add of it."""
    if not corpus.packed:
        say(f"test loss: {summary['heldout_loss']:.4f} ({summary['heldout_bits_per_char']:.4f} bits/character)")
        return {}
    together, each = evaluate(answer, corpus), evaluate_each(answer, corpus)
    mixed = answer is not model
    what = (f", the model mixed with {answer.counts.label} (weight {answer.weight:.2f} on the model, chosen on "
            "validation lines)" if mixed else "")
    say(f"held-out loss: {loss_words(together)} ({', '.join(stream.name for stream in corpus.heldout)}: "
        f"{corpus.num_heldout_tokens:,} tokens){what}")
    if len(each) > 1:
        for name, loss in each.items():
            say(f"  {name}: {loss_words(loss)}")
    report = {"heldout_loss": together.nats_per_token, "heldout_bits_per_char": together.bits_per_char,
              "heldout_by_file": {name: asdict(loss) for name, loss in each.items()}}
    if mixed:
        alone = evaluate_each(model, corpus)
        say(f"the model alone: {loss_words(evaluate(model, corpus))}"
            + "".join(f"; {name}: {loss.nats_per_token:.4f}" for name, loss in alone.items() if len(alone) > 1))
        report.update(counts={**answer.choice, "label": answer.counts.label},
                      heldout_loss_alone=summary["heldout_loss"],
                      heldout_bits_per_char_alone=summary["heldout_bits_per_char"],
                      heldout_by_file_alone={name: asdict(loss) for name, loss in alone.items()})
    return report


def checkpoint_base(args) -> str | None:
    """Where checkpoints are written: --save_checkpoint, else the checkpoint --resume goes on from."""
    return args.save_checkpoint or args.resume


def checkpoint_path(base: str, args, label: str) -> Path:
    """One model's checkpoint: `base` itself, or with several models its stem plus the model's name."""
    path = Path(base)
    return path if len(args.models) == 1 else path.with_name(f"{path.stem}_{label}{path.suffix}")


def base_corpus_name(args) -> str:
    """The base corpus asked for: --base_corpus, else TinyStories when a local copy is given, else the plays."""
    return args.base_corpus or ("tinystories" if args.tinystories_path else "plays")


def has_own_text(args) -> bool:
    return bool(args.input_files or args.input_dir)


def default_eval_files(args, plan: RunPlan) -> list:
    """--eval_files, or by default the standard held-out work when a packed run trains on the plays."""
    if args.eval_files is not None:
        return args.eval_files
    trains_on_plays = base_corpus_name(args) == "plays" and (args.base_weight > 0 or not has_own_text(args))
    return [HELDOUT_WORK] if plan.packing and trains_on_plays else []


def resume_points(args, plan: RunPlan, corpus, enc, vocab_ids) -> dict[str, Path | None]:
    """The checkpoint each model goes on from (None: from the beginning), every one read and checked against
    the model and settings of this run before any model trains, so that a bad one stops it with nothing written."""
    if not args.resume:
        return {}
    budget = run_budget(plan, corpus, args.batch_size)
    settings = run_settings(corpus, batch_size=args.batch_size, seed=args.seed, recipe=plan.recipe,
                            max_steps=budget["max_steps"], train_seconds=budget.get("train_seconds"),
                            steps_per_epoch=budget.get("steps_per_epoch"))
    trained = [family for family in args.models if not compares_kgram_designs(family, args)]
    points = {family: resume_point(checkpoint_path(args.resume, args, model_label(family, args))) for family in trained}
    for family, path in points.items():
        if path is not None:
            open_resumable(path, family, model_config(family, args, enc.n_vocab), vocab_ids, settings)
    return points


def stopped_line(stopped: TrainingStopped, args, argv: list[str]) -> str:
    """The one line a run stopped by a signal ends with: where it stopped, and the command that goes on."""
    base = checkpoint_base(args)
    if base is None:
        return f"Stopped at {stopped.progress}; no checkpoint was written: add --save_checkpoint PATH to resume."
    command = [*launch_command(), *without_resume(argv), "--resume", base]
    return f"Stopped at {stopped.progress}; resume with: {shlex.join(command)}"


def launch_command() -> list[str]:
    """How this process was started: python and the script, the installed pico-llm, or torchrun (whose options
    on several machines are the user's own)."""
    program = sys.argv[0]
    if launched_by_torchrun():
        one_machine = os.environ.get("LOCAL_WORLD_SIZE") == os.environ["WORLD_SIZE"]
        options = ["--standalone", "--nproc_per_node", os.environ["WORLD_SIZE"]] if one_machine else ["..."]
        return ["torchrun", *options, program]
    return [Path(sys.executable).name, program] if program.endswith(".py") else [Path(program).name]


def without_resume(argv: list[str]) -> list[str]:
    """The arguments less any --resume PATH (or --resume=PATH)."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--resume":
            skip = True
        elif not arg.startswith("--resume="):
            kept.append(arg)
    return kept


# ---------------------------------------------------------------- training a recorded run again


THIS_COMMANDS_FLAGS = ("rerun", "metrics_json", "save_checkpoint", "checkpoint_every", "resume")  # its outputs


@dataclass(frozen=True)
class Replay:
    """A run that a --metrics_json file recorded, to train again (--rerun): its flags, and each model's record."""

    path: str
    config: dict
    runs: dict  # model label -> what the file recorded of that model

    @classmethod
    def read(cls, path: str) -> Replay:
        """The record at `path`, or one clear message naming it and what to give instead."""
        fix = "give --rerun the file that a run's --metrics_json wrote"
        try:
            record = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputError(f"--rerun {path}: no such file; {fix}.") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise InputError(f"--rerun {path} cannot be read as JSON ({error}); {fix}.") from None
        config = record.get("config") if isinstance(record, dict) else None
        if not isinstance(config, dict) or not isinstance(config.get("models"), list):
            raise InputError(f"--rerun {path} records no run's flags (no config naming its --models); {fix}.")
        runs = record["models"] if "models" in record else {None: record}
        return cls(str(path), config, runs)

    def flags(self, given: argparse.Namespace) -> argparse.Namespace:
        """The recorded run's flags (one it predates keeps its default), with this command's outputs."""
        parser = build_parser()
        flags = parser.parse_args([])
        for action in parser._actions:
            if action.default == argparse.SUPPRESS:  # --help
                continue
            value = self.config.get(action.dest, getattr(flags, action.dest))
            if action.type is not None and value is not None:
                value = [action.type(item) for item in value] if isinstance(value, list) else action.type(value)
            if action.choices is not None and value is not None and not set(
                    value if isinstance(value, list) else [value]) <= set(action.choices):
                raise InputError(f"--rerun {self.path}: its {action.option_strings[0]} {value!r} is not one of "
                                 f"{', '.join(map(str, action.choices))}; give the file that a run's --metrics_json "
                                 "wrote")
            setattr(flags, action.dest, value)
        for name in THIS_COMMANDS_FLAGS:
            setattr(flags, name, getattr(given, name))
        return flags

    def budget_and_recipe(self, label: str, budget: dict, recipe: Recipe) -> tuple[dict, Recipe]:
        """Where the recorded run was budgeted in seconds, the steps it took at the rates it took them at; else
        the flags' own budget, which takes the same steps again."""
        record = self.runs.get(label) or (next(iter(self.runs.values())) if len(self.runs) == 1 else {})
        rates = record.get("learning_rates")
        if not rates:
            return budget, recipe
        return {"max_steps": len(rates)}, ReplayedRecipe(**asdict(recipe), rates=tuple(rates))


def write_metrics(args, plan: RunPlan, device, runs: dict) -> None:
    """--metrics_json: a flat record for one model, or one record per model under "models"."""
    config = {**vars(args), "packed": plan.packing, "recipe": asdict(plan.recipe), "budget": {
        "max_steps": plan.max_steps, "train_seconds": plan.train_seconds, "num_epochs": plan.num_epochs,
        "steps_per_epoch": plan.steps_per_epoch}}
    body = next(iter(runs.values())) if len(runs) == 1 else {"models": runs}
    write_json_atomically(args.metrics_json, {**provenance(device), **body, "config": config})
    say(f"wrote {args.metrics_json}")


# ---------------------------------------------------------------- the notebooks' experiments


def compares_kgram_designs(family: str, args) -> bool:
    """Whether this family's part of the run is the k-gram designs' comparison rather than one model's training."""
    return family == "kgram" and args.kgram_variant == "compare"


def compare_kgram_designs(args, plan: RunPlan, corpus, enc, device) -> None:
    """The three k-gram designs on identical settings, and the starter's loop, as in notebook 02."""
    per_epoch = plan.steps_per_epoch or DEFAULT_COMPARISON_STEPS
    steps = plan.max_steps or (plan.num_epochs or 1) * per_epoch
    artefact = kgram_design_comparison(
        corpus, enc.n_vocab, preset="command line", device=device, k=args.kgram_k, embed_size=args.embed_size,
        num_inner_layers=args.num_inner_mlp_layers, recipe=plan.recipe, batch_size=args.batch_size, steps=steps,
        seed=args.seed, data=corpus.trained_on)
    say(f"\n== k-gram designs, {steps} steps each (batch {args.batch_size})")
    say(kgram_comparison_table(artefact).to_string(float_format=lambda x: f"{x:,.3f}"))
    say(f"wrote {artefact_path('kgram_comparison')}")


def collect_transformer_metrics(args, plan: RunPlan, corpus, enc, device) -> None:
    """Notebook 03's comparison: every preset and the LSTM on the same data, batches and seed."""
    run = get_run_preset(args.preset)
    steps = plan.max_steps or (plan.num_epochs or 1) * (plan.steps_per_epoch or run.train_steps)
    lstm = ("lstm", dict(vocab_size=enc.n_vocab, embed_size=run.embed_size, hidden_size=run.embed_size))
    artefact = transformer_comparison(
        corpus, enc.n_vocab, preset=run.name, device=device, scale=run.transformer_scale, steps=steps,
        batch_size=args.batch_size, recipe=plan.recipe, seed=args.seed,
        vocab_ids=corpus_vocab_ids(args, plan, corpus, device),
        baselines={"LSTM": lstm}, prompt_ids=enc.encode(args.prompt), data=corpus.trained_on)
    say(f"\n== Transformer presets ({run.name} scale {run.transformer_scale or 'full size'}), {steps} steps each")
    say(transformer_metrics_table(artefact).to_string(float_format=lambda x: f"{x:,.3f}"))
    say(f"wrote {artefact_path('transformer_metrics')}")


def run_custom_sweep(args, enc, device) -> None:
    """Notebook 05's corpus-size sweep on --input_dir, logged to --custom_sweep_log."""
    run = get_run_preset(args.preset)
    artefact = custom_data_sweep(enc, run, device=device, input_dir=args.input_dir or CUSTOM_CORPUS,
                                 prompt=args.prompt, seed=args.seed, path=args.custom_sweep_log)
    say(runs_table(artefact)[["model", "sequences", "final_loss", "tokens_per_s"]].to_string(index=False))
    say(f"wrote {args.custom_sweep_log}")


def corpus_vocab_ids(args, plan: RunPlan, corpus, device) -> list[int] | None:
    """The kept ids of the head the flags ask for (None: all of GPT-2's)."""
    return vocab_ids_for(corpus, resolve_vocab(args.vocab, plan.packing, device), args.min_count)


def command_line_run(argv: list[str], label: str = "the command line's defaults") -> SpeedRun:
    """What the command line trains a Transformer with for these flags, as a run of the learning-speed
    benchmark: the same resolution of every default (recipe, head, min_count, batch, compile) that a run
    from the terminal goes through, so that the benchmark measures the defaults a user gets."""
    args = build_parser().parse_args(argv)
    plan = check_args(args)
    device = pick_device(args.device_id)
    return SpeedRun(label, packing=plan.packing, recipe=plan.recipe,
                    vocab=resolve_vocab(args.vocab, plan.packing, device), min_count=args.min_count,
                    transformer=check_transformer(args), batch_size=resolve_batch_size(args.batch_size, plan.packing,
                                                                                      device),
                    block_size=args.block_size, compile=args.compile, counts=plan.counts)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        replay = Replay.read(args.rerun) if args.rerun else None
        if replay is not None:
            args = replay.flags(args)
            say(f"training again the run recorded in {replay.path}, with its flags")
        plan = replace(check_args(args), replay=replay)
        device = training_device(args, plan)
        enc = get_tokenizer()
        seed_everything(args.seed)
        corpus = build_corpus(
            enc, args.block_size, packing=plan.packing, base_corpus=base_corpus_name(args), base_weight=args.base_weight,
            tinystories_stories=args.tinystories_stories, tinystories_path=args.tinystories_path,
            input_files=args.input_files, input_dir=args.input_dir, eval_files=default_eval_files(args, plan),
            limit_custom_examples=args.limit_custom_examples, test_fraction=args.test_fraction, seed=args.seed,
            **({"validation_fraction": args.validation_fraction} if plan.counts else {}))
        if args.collect_transformer_metrics or args.custom_sweep_log:
            if args.collect_transformer_metrics:
                collect_transformer_metrics(args, plan, corpus, enc, device)
            if args.custom_sweep_log:
                run_custom_sweep(args, enc, device)
            return 0
        vocab_ids = corpus_vocab_ids(args, plan, corpus, device)
        resumes = resume_points(args, plan, corpus, enc, vocab_ids)
        trains = any(not compares_kgram_designs(family, args) for family in args.models)
        counting = Counting(corpus) if plan.counts and trains else None
        runs = {}
        for family in args.models:
            if compares_kgram_designs(family, args):
                compare_kgram_designs(args, plan, corpus, enc, device)
            else:
                runs[model_label(family, args)] = train_and_report(family, args, plan, corpus, enc, device,
                                                                   vocab_ids, counting, resumes.get(family))
        if args.metrics_json and runs:
            write_metrics(args, plan, device, runs)
    except TrainingStopped as stopped:
        if is_main_process():
            print(stopped_line(stopped, args, sys.argv[1:] if argv is None else argv), file=sys.stderr)
        return stopped.exit_status
    except (InputError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    finally:
        stop_data_parallel()
    return 0
