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
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from .artefacts import artefact_path, provenance, write_json_atomically
from .device import is_main_process, pick_device, resolve_precision, seed_everything
from .studies import (CUSTOM_CORPUS, KVCacheTiming, SizeSweep, custom_data_sweep, kgram_comparison_table,
                      kgram_design_comparison, runs_table, transformer_comparison, transformer_metrics_table)
from .counts import fit_count_models, mix_with_counts
from .heads import MIN_COUNT_PER_MILLION, VOCABULARIES, resolve_vocab, vocab_ids_for
from .models import KGramConfig, MODEL_FAMILIES, build_model, count_parameters, describe_vocabulary
from .corpus import TrainingText, build_corpus
from .sources import HELDOUT_WORK, resolve_data_path
from .parallel import (BACKENDS, DEFAULT_TIMEOUT_S, check_backend, launched_by_torchrun, launched_processes,
                       start_data_parallel, stop_data_parallel)
from .presets import (DATA_FLAGS, EXPERIMENT_FLAGS, FIELD_DEFAULT, FLAG_GROUPS, MODEL_FLAGS, OUTPUT_FLAGS, RUN_PRESETS,
                      TRAINING_FLAGS, TRANSFORMER_PRESETS, InputError, TransformerConfig, flag, get_run_preset,
                      transformer_config)
from .resume import TrainingStopped, open_resumable, resume_point, run_settings
from .sampling import Decoding, generate_text
from .studies.replay import SAME_TO, StudyRun, replay_comparison, study_runs_listing, train_study_run
from .speed import SpeedRun
from .tokenizer import get_tokenizer
from .training import (BEFORE_RECORDED, PACKED_CPU_BATCH, STARTER_BATCH, STARTER_RECIPE, Arithmetic, Budget,
                       Checkpointing, Recipe, TrainingRun, check_batch_split, epoch_losses, evaluate, evaluate_each,
                       how_it_trained, replaying, run_summary, train_model)

SAMPLE_SETTINGS = [("greedy", None), ("top-p 0.95", 0.95), ("top-p 1.0", 1.0)]
STARTER_EPOCHS = 3
COMMAND_LINE_RECIPE = Recipe(init="counts")  # packed runs: the bundle's recipe, a Transformer starting from counts
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


@dataclass(frozen=True)
class CommandLine:
    """The command's own flags: those that set no field of a run's description (the models to train and their
    head, the window, the starter's epochs, the device and processes, what the samples continue, the metrics file
    and the experiments). Every other flag is declared beside the field it sets."""

    block_size: int = field(default=1024, metadata=flag(
        "--block_size", group=DATA_FLAGS,
        help="Tokens per training window (packed), or kept per example (--packing off); at least 2."))
    packing: str | None = field(default=None, metadata=flag(
        "--packing", group=DATA_FLAGS, choices=["on", "off"],
        help="on: random windows of packed token streams, every position a target. off: the starter's one padded "
             "example per line. Default: off for runs counted in epochs, else on."))
    models: tuple = field(default=(), metadata=flag(
        "--models", group=MODEL_FLAGS, nargs="+", default=["kgram", "lstm"], choices=list(MODEL_FAMILIES),
        help="Which model families to train."))
    vocab: str = field(default="auto", metadata=flag(
        "--vocab", group=MODEL_FLAGS, choices=VOCABULARIES,
        help="The models' embedding and output: all 50,257 GPT-2 ids, or the ids the training text uses "
             "(--min_count times or more) plus one bucket for every other id. auto: the compact one for packed runs "
             "on the CPU, where the head is most of a step, all ids elsewhere."))
    min_count: int | str = field(default="auto", metadata=flag(
        "--min_count", group=MODEL_FLAGS, type=count_or_auto,
        help=f"With a compact head: how often an id must occur in the training text to be kept. auto: "
             f"{MIN_COUNT_PER_MILLION} times per million training tokens (at least once)."))
    counts: str = field(default="auto", metadata=flag(
        "--counts", group=MODEL_FLAGS, choices=["auto", "on", "off"],
        help="Mix each trained model with an n-gram count model of the same training text, p = w p_model + (1 - w) "
             "p_counts, the count model's order and the weight w chosen on validation lines taken out of training "
             "(--validation_fraction). auto: on for packed runs that train on the base corpus, whose text is large "
             "enough to count; off: the model alone. The run reports the model alone beside the mixture."))
    transformer_variant: str = field(default="GPT-oss", metadata=flag(
        "--transformer_variant", group=MODEL_FLAGS, choices=list(TRANSFORMER_PRESETS),
        help="Transformer preset used when 'transformer' is among --models."))
    enable_transformer_gptoss: bool = field(default=False, metadata=flag(
        "--enable_transformer_gptoss", group=MODEL_FLAGS, action="store_true",
        help="Also train the GPT-oss Transformer (the course notes' flag)."))
    num_epochs: int | None = field(default=None, metadata=flag(
        "--num_epochs", group=TRAINING_FLAGS, help=f"The starter's epochs (default {STARTER_EPOCHS} in an epoch run)."))
    max_steps_per_epoch: int | None = field(default=None, metadata=flag(
        "--max_steps_per_epoch", group=TRAINING_FLAGS,
        help="Stop each of the starter's epochs after this many optimizer steps."))
    device_id: str = field(default="cuda:0", metadata=flag(
        "--device_id", group=TRAINING_FLAGS,
        help="Torch device; falls back to the CPU with a note when CUDA is absent. Under torchrun each process takes "
             "its own GPU (or the CPU)."))
    dist_backend: str = field(default="auto", metadata=flag(
        "--dist_backend", group=TRAINING_FLAGS, choices=BACKENDS,
        help="Under torchrun: how processes exchange gradients (auto: NCCL on GPUs, gloo on CPUs)."))
    dist_timeout: float = field(default=DEFAULT_TIMEOUT_S, metadata=flag(
        "--dist_timeout", group=TRAINING_FLAGS,
        help="Under torchrun: seconds a process waits for the others before the run ends with an error."))
    prompt: str = field(default="Once upon a", metadata=flag("--prompt", group=TRAINING_FLAGS,
                                                             help="Text the samples continue."))
    max_new_tokens: int = field(default=20, metadata=flag("--max_new_tokens", group=TRAINING_FLAGS,
                                                          help="Tokens generated per sample."))
    metrics_json: str | None = field(default=None, metadata=flag(
        "--metrics_json", group=OUTPUT_FLAGS, metavar="PATH",
        help="Write the run's held-out and training loss, steps, tokens, tokens/s, seconds, samples and full "
             "configuration there as JSON."))
    rerun: str | None = field(default=None, metadata=flag(
        "--rerun", group=OUTPUT_FLAGS, metavar="PATH",
        help="Train again a recorded run: one that a --metrics_json file recorded (its flags; other flags are "
             "ignored, but for this command's outputs), or run --run N of a study's artefact (artefacts/NAME.json), "
             "by the study's own code. A run budgeted in seconds takes the steps it took at the learning rates it "
             "took them at, so that on the same machine it ends with the same losses."))
    run: int | None = field(default=None, metadata=flag(
        "--run", group=OUTPUT_FLAGS, metavar="N",
        help="With --rerun of a study's artefact: which of its runs to train again (without it, the runs are "
             "listed)."))
    collect_transformer_metrics: bool = field(default=False, metadata=flag(
        "--collect_transformer_metrics", group=EXPERIMENT_FLAGS, action="store_true",
        help="Train every Transformer preset (shrunk by --preset) and the LSTM on the same batches; write average "
             "loss, tokens/s, wall seconds, parameters and the KV-cache speed-up at 200 new tokens to "
             "artefacts/transformer_metrics.json."))
    custom_sweep_log: str | None = field(default=None, metadata=flag(
        "--custom_sweep_log", group=EXPERIMENT_FLAGS, metavar="PATH",
        help="Run the corpus-size sweep of notebook 05 (LSTM and GPT-oss on 3, 63, 123 and 185 lines of "
             "--input_dir) and write it to PATH, resuming an interrupted run."))
    preset: str | None = field(default=None, metadata=flag(
        "--preset", group=EXPERIMENT_FLAGS, choices=list(RUN_PRESETS),
        help="Run preset sizing the experiments (default: $PICOLLM_PRESET, else cpu or gpu)."))


# Where the flags are declared, in the order --help shows them within each group: each flag beside the field it sets.
FLAG_SOURCES = (TrainingText, CommandLine, KGramConfig, TransformerConfig, Budget, TrainingRun, Recipe, Arithmetic,
                Checkpointing)
NUMBERS = {"int": int, "float": float}


def declared_flags():
    """(the field, its flag) of every flag, in FLAG_SOURCES' order."""
    return [(item, item.metadata["flag"]) for source in FLAG_SOURCES for item in fields(source)
            if "flag" in item.metadata]


def flag_type(item):
    """What a flag's text is read as, from its field's annotation: an int or a float where the field is one (or
    None), else the text itself."""
    return NUMBERS.get(str(item.type).split("|")[0].strip())


def recipe_words(name: str, value) -> str:
    if value is None:
        return "off" if name == "grad_clip" else "a twentieth of the run"
    return f"{value:g}" if isinstance(value, float) else str(value)


def resolved_words(name: str) -> str:
    """What a flag left to its automatic default becomes, for --help: a recipe flag, the bundle's recipe or the
    starter's in an epoch run; the head, the batch and the number format, what they resolve to on this machine."""
    if name in {item.name for item in fields(Recipe)}:
        return (f" Not given: {recipe_words(name, getattr(COMMAND_LINE_RECIPE, name))} "
                f"({recipe_words(name, getattr(STARTER_RECIPE, name))} in an epoch run, the starter's).")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    here = {"vocab": lambda: "the compact head" if resolve_vocab("auto", True, device) == "corpus" else "all ids",
            "batch_size": lambda: str(resolve_batch_size(None, True, device)),
            "precision": lambda: resolve_precision("auto", device)}
    return f" On this machine ({device.type}), for a packed run: {here[name]()}." if name in here else ""


def add_flag(group, item, declared: dict) -> None:
    options = dict(declared["options"])
    if "action" not in options and flag_type(item):
        options.setdefault("type", flag_type(item))
    if len(declared["names"]) > 1:
        options["action"], options["dest"] = RememberFlag, declared["names"][0].lstrip("-")
    default = item.default if declared["default"] == FIELD_DEFAULT else declared["default"]
    group.add_argument(*declared["names"], default=default, help=declared["help"] + resolved_words(item.name),
                       **options)


def build_parser() -> argparse.ArgumentParser:
    """The command line, built from the flags declared beside the fields they set."""
    parser = argparse.ArgumentParser(
        prog="pico-llm",
        description="Train small language models (k-gram MLP, LSTM, Transformer) on TinyStories and/or your "
                    "own text, then sample from them. Runs counted in epochs (--num_epochs, "
                    "--max_steps_per_epoch) are the starter's: one padded example per line and plain Adam. "
                    "Other runs use packed token streams and AdamW with warm-up and cosine decay.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    groups = {title: parser.add_argument_group(title) for title in FLAG_GROUPS}
    for item, declared in declared_flags():
        add_flag(groups[declared["group"]], item, declared)
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
    for name in ("save_checkpoint", "resume", "metrics_json", "custom_sweep_log"):
        path = getattr(args, name)
        if path is not None and Path(path).is_dir():
            fail(f"--{name} {path} is a folder: give a file path, e.g. {Path(path) / 'run.pt'}.")
    for name in ("save_checkpoint", "metrics_json", "custom_sweep_log"):
        if getattr(args, name) is not None:
            check_writable(name, Path(getattr(args, name)))


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
    base = COMMAND_LINE_RECIPE if packing and not epoch_flags else STARTER_RECIPE
    flags = {"optimizer": args.optimizer, "learning_rate": args.learning_rate, "schedule": args.schedule,
             "warmup_steps": args.warmup_steps, "weight_decay": args.weight_decay, "init": args.init}
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


def run_budget(plan: RunPlan, corpus, batch_size: int) -> Budget:
    """train_model's budget: the steps of the starter's epochs, the steps or seconds asked for, or one
    pass over the training tokens."""
    if plan.counted_in_epochs:
        per_epoch = plan.steps_per_epoch or math.ceil(corpus.num_train / batch_size)
        return Budget(max_steps=plan.num_epochs * per_epoch, steps_per_epoch=per_epoch)
    if plan.max_steps is not None or plan.train_seconds is not None:
        return Budget(max_steps=plan.max_steps, train_seconds=plan.train_seconds)
    tokens_per_step = batch_size * corpus.block_size
    return Budget(max_steps=max(1, math.ceil(corpus.num_train_tokens / tokens_per_step)) if corpus.packed
                  else math.ceil(corpus.num_train / batch_size))


def training_run(args, plan: RunPlan, corpus, label: str, counting: Counting | None = None,
                 resume_from: Path | None = None) -> TrainingRun:
    """The run the flags describe for one model: its budget (a recorded one's steps and rates, with --rerun; the
    seconds spent fitting count models taken out of a budget in seconds), recipe, arithmetic and checkpoints."""
    budget = run_budget(plan, corpus, args.batch_size)
    if counting is not None and budget.train_seconds:
        budget = replace(budget, seconds_spent=counting.seconds)
    base = checkpoint_base(args)
    run = TrainingRun(budget=budget, batch_size=args.batch_size, seed=args.seed, recipe=plan.recipe,
                      checkpointing=Checkpointing(path=checkpoint_path(base, args, label) if base else None,
                                                  every=args.checkpoint_every, resume_from=resume_from,
                                                  metadata={"trained_on": corpus.trained_on}),
                      arithmetic=Arithmetic(precision=args.precision, grad_accum_steps=args.grad_accum_steps,
                                            compile=args.compile))
    return replaying(run, plan.replay.rates(label)) if plan.replay is not None else run


@dataclass(frozen=True)
class Command:
    """What every model of one command shares: its flags, their plan, the corpus, the tokenizer, the device, the
    head's kept ids (None: all of GPT-2's) and the count models it mixes with (None: none)."""

    args: argparse.Namespace
    plan: RunPlan
    corpus: object
    enc: object
    device: torch.device
    vocab_ids: list[int] | None = None
    counting: Counting | None = None


def train_and_report(family: str, command: Command, resume_from: Path | None = None) -> dict:
    """Train one family (going on from `resume_from` when given), mix it with counts when the plan says so, print
    its losses and samples; what --metrics_json stores of it."""
    args, plan, corpus, enc, device = command.args, command.plan, command.corpus, command.enc, command.device
    vocab_ids, counting = command.vocab_ids, command.counting
    seed_everything(args.seed)
    model = build_model(family, **model_config(family, args, enc.n_vocab), vocab_ids=vocab_ids).to(device)
    label = model_label(family, args)
    data = (f"{corpus.num_train_tokens:,} training tokens of {corpus.trained_on}, packed" if corpus.packed
            else f"{corpus.num_train} training sequences of {corpus.trained_on}")
    say(f"\n== {label}: {count_parameters(model):,} parameters, vocabulary {describe_vocabulary(model)}, "
          f"{data}, device {device}")
    run = training_run(args, plan, corpus, label, counting, resume_from)
    if resume_from is not None:
        say(f"going on from {resume_from}")
    history = train_model(model, corpus, run, name=label)
    spent = run.budget.seconds_spent
    if plan.counted_in_epochs:
        for epoch, loss in epoch_losses(history).items():
            say(f"epoch {epoch}: loss {loss:.4f}")
    summary = run_summary(history)
    resumed = f" (resumed at step {summary['resumed_from_step']})" if "resumed_from_step" in summary else ""
    starting = summary.get("seconds_starting_from_counts", 0.0)
    before = []
    if spent:
        before.append(f"{spent:.1f} s fitting count models")
    if starting:
        before.append(f"{starting:.1f} s starting from the bigram counts")
    fitting = f" (of them {', '.join(before)})" if before else ""
    say(f"{summary['steps']} steps{resumed}, {summary['tokens_seen']:,} tokens in {summary['train_seconds']:.2f} s of "
          f"training{fitting}: {summary['tokens_per_s']:,.0f} tokens/s; final training loss {summary['train_loss']:.4f}")
    answer = mix_with_counts(model, counting.models, corpus.validation) if counting else model
    say(f"samples from {args.prompt!r}{' (the model mixed with counts)' if counting else ''}:")
    samples = {}
    for setting, top_p in SAMPLE_SETTINGS if is_main_process() else ():
        samples[setting] = generate_text(answer, enc, args.prompt, args.max_new_tokens, Decoding(top_p=top_p),
                                         seed=args.seed, precision=summary["precision"])
        say(f"  {setting:<11} {samples[setting]!r}")
    report = {**summary, "samples": samples, "model": {"family": family, "parameters": count_parameters(model),
                                                       "vocabulary": describe_vocabulary(model), **model.config}}
    if summary["heldout_loss"] is not None:
        report.update(report_heldout(model, answer, corpus, summary))
    report.update(how_it_trained(history))  # what --rerun needs to train it again
    if run.checkpointing.path is not None:
        say(f"saved {run.checkpointing.path}")
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


def training_text(args, plan: RunPlan) -> TrainingText:
    """What the flags ask to train on and hold out (the validation lines only where the run mixes with counts)."""
    return TrainingText(base_corpus=base_corpus_name(args), base_weight=args.base_weight,
                        tinystories_stories=args.tinystories_stories, tinystories_path=args.tinystories_path,
                        input_files=tuple(args.input_files), input_dir=args.input_dir,
                        limit_custom_examples=args.limit_custom_examples, test_fraction=args.test_fraction,
                        seed=args.seed, eval_files=tuple(default_eval_files(args, plan)),
                        validation_fraction=args.validation_fraction if plan.counts else 0.0)


def resume_points(args, plan: RunPlan, corpus, enc, vocab_ids) -> dict[str, Path | None]:
    """The checkpoint each model goes on from (None: from the beginning), every one read and checked against
    the model and settings of this run before any model trains, so that a bad one stops it with nothing written."""
    if not args.resume:
        return {}
    settings = run_settings(corpus, TrainingRun(budget=run_budget(plan, corpus, args.batch_size),
                                                batch_size=args.batch_size, seed=args.seed, recipe=plan.recipe))
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


THIS_COMMANDS_FLAGS = ("rerun", "run", "metrics_json", "save_checkpoint", "checkpoint_every", "resume")  # outputs
RERUN_FIX = "give --rerun the file that a run's --metrics_json wrote, or a study's artefact (artefacts/NAME.json)"


def read_record(path: str) -> dict:
    """The JSON object --rerun names, or one clear message naming it and what to give instead."""
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"--rerun {path}: no such file; {RERUN_FIX}.") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"--rerun {path} cannot be read as JSON ({error}); {RERUN_FIX}.") from None
    if not isinstance(record, dict):
        raise InputError(f"--rerun {path} holds no recorded run; {RERUN_FIX}.")
    return record


def is_artefact(record: dict) -> bool:
    """An artefact of a notebook or benchmark (a study's holds its runs), not a --metrics_json file."""
    return "name" in record and isinstance(record.get("results"), dict)


def replay_study_run(args, record: dict) -> None:
    """--rerun of a study's artefact: its run --run N trained again by the study's code, each loss it measured
    printed beside the recorded one."""
    runs = record["results"].get("runs", [])
    if runs and (args.run is None or not 0 <= args.run < len(runs)):
        say(f"the runs of {args.rerun}:\n{study_runs_listing(record)}")
    run = StudyRun.read(args.rerun, record, args.run)
    say(f"training again run {run.index} of {run.path} ({run.study}, {run.preset} preset): "
        f"{json.dumps(run.record['config'])}")
    replayed = train_study_run(run, device=pick_device(args.device_id))
    rows = replay_comparison(run.record, replayed)
    for row in rows:
        verdict = "same" if row["same"] else f"differs by {row['difference']:.2g}"
        say(f"  {row['measure']:<24} recorded {row['recorded']:.6f}  replayed {row['replayed']:.6f}  {verdict}")
    same = all(row["same"] for row in rows)
    say(f"{'the same run: every loss agrees' if same else 'not the same: a loss differs'} to {SAME_TO:g}"
        f"{'' if same else ' (another machine or torch version rounds differently)'}")


@dataclass(frozen=True)
class Replay:
    """A run that a --metrics_json file recorded, to train again (--rerun): its flags, and each model's record."""

    path: str
    config: dict
    runs: dict  # model label -> what the file recorded of that model

    @classmethod
    def read(cls, path: str, record: dict) -> Replay:
        """The metrics file `record` read from `path`, or one clear message naming it and what to give instead."""
        config = record.get("config")
        if not isinstance(config, dict) or not isinstance(config.get("models"), list):
            raise InputError(f"--rerun {path} records no run's flags (no config naming its --models) and is no "
                             f"study's artefact; {RERUN_FIX}.")
        runs = record["models"] if "models" in record else {None: record}
        return cls(str(path), config, runs)

    def flags(self, given: argparse.Namespace) -> argparse.Namespace:
        """The recorded run's flags (one it predates keeps what runs did before it: BEFORE_RECORDED, or else its
        default), with this command's outputs."""
        parser = build_parser()
        flags = parser.parse_args([])
        for action in parser._actions:
            if action.default == argparse.SUPPRESS:  # --help
                continue
            value = self.config.get(action.dest, BEFORE_RECORDED.get(action.dest, getattr(flags, action.dest)))
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

    def rates(self, label: str) -> list[float] | None:
        """The rate of every step the model took, where its run was budgeted in seconds (None: the flags' own
        budget takes the same steps again)."""
        record = self.runs.get(label) or (next(iter(self.runs.values())) if len(self.runs) == 1 else {})
        return record.get("learning_rates")


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
    design = KGramConfig(vocab_size=enc.n_vocab, k=args.kgram_k, embed_size=args.embed_size,
                         num_inner_layers=args.num_inner_mlp_layers)
    run = TrainingRun(budget=Budget(max_steps=steps), batch_size=args.batch_size, seed=args.seed, recipe=plan.recipe)
    artefact = kgram_design_comparison(corpus, design, run, preset="command line", device=device,
                                       data=corpus.trained_on)
    say(f"\n== k-gram designs, {steps} steps each (batch {args.batch_size})")
    say(kgram_comparison_table(artefact).to_string(float_format=lambda x: f"{x:,.3f}"))
    say(f"wrote {artefact_path('kgram_comparison')}")


def collect_transformer_metrics(args, plan: RunPlan, corpus, enc, device) -> None:
    """Notebook 03's comparison: every preset and the LSTM on the same data, batches and seed."""
    run = get_run_preset(args.preset)
    steps = plan.max_steps or (plan.num_epochs or 1) * (plan.steps_per_epoch or run.train_steps)
    lstm = ("lstm", dict(vocab_size=enc.n_vocab, embed_size=run.embed_size, hidden_size=run.embed_size))
    training = TrainingRun(budget=Budget(max_steps=steps), batch_size=args.batch_size, seed=args.seed,
                           recipe=plan.recipe)
    artefact = transformer_comparison(corpus, training, preset=run.name, device=device, scale=run.transformer_scale,
                                      vocab_ids=corpus_vocab_ids(args, plan, corpus, device), baselines={"LSTM": lstm},
                                      cache=KVCacheTiming(prompt_ids=tuple(enc.encode(args.prompt))))
    say(f"\n== Transformer presets ({run.name} scale {run.transformer_scale or 'full size'}), {steps} steps each")
    say(transformer_metrics_table(artefact).to_string(float_format=lambda x: f"{x:,.3f}"))
    say(f"wrote {artefact_path('transformer_metrics')}")


def run_custom_sweep(args, enc, device) -> None:
    """Notebook 05's corpus-size sweep on --input_dir, logged to --custom_sweep_log."""
    run = get_run_preset(args.preset)
    sweep = SizeSweep(prompt=args.prompt, seed=args.seed, input_dir=args.input_dir or CUSTOM_CORPUS)
    artefact = custom_data_sweep(enc, run, sweep, device=device, path=args.custom_sweep_log)
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
        record = read_record(args.rerun) if args.rerun else None
        if record is not None and is_artefact(record):
            replay_study_run(args, record)
            return 0
        replay = Replay.read(args.rerun, record) if record is not None else None
        if replay is not None:
            args = replay.flags(args)
            say(f"training again the run recorded in {replay.path}, with its flags")
        plan = replace(check_args(args), replay=replay)
        device = training_device(args, plan)
        enc = get_tokenizer()
        seed_everything(args.seed)
        corpus = build_corpus(enc, args.block_size, training_text(args, plan), packing=plan.packing)
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
        command = Command(args, plan, corpus, enc, device, vocab_ids, counting)
        runs = {}
        for family in args.models:
            if compares_kgram_designs(family, args):
                compare_kgram_designs(args, plan, corpus, enc, device)
            else:
                runs[model_label(family, args)] = train_and_report(family, command, resumes.get(family))
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
