"""Section 7. Training and evaluation: the recipe, train_model's per-step history, checkpoints.

The recipe is what people train small GPTs with today (nanoGPT's): AdamW with weight decay on
the weight matrices only, a linear warm-up, a cosine decay to a tenth of the peak rate, and
gradient-norm clipping at 1.0. `STARTER_RECIPE` is the starter's plain Adam at a constant
rate, which the course notes' runs use. A recipe with init="counts" starts a Transformer from
the bigram counts of its training text (count_start.py) instead of from random weights.

A run is as long as its budget: `max_steps` optimizer steps, or `train_seconds` of training
(evaluation not counted), in which case the step count the cosine spans is estimated from the
time the steps take, and corrected after every step.

A step can compute in bf16 or fp16 (autocast; fp16 with a gradient scaler), split its batch
into micro-batches whose gradients add up (gradient accumulation, which bounds memory), run a
torch.compile'd loss, and share its batch among the processes of a data-parallel run
(torchrun): every process draws the same global batch from the seed and trains on its own
slice, so N processes follow the trajectory of one.

Given a checkpoint path, a run keeps its whole state there as it goes, and a run that was stopped
goes on from it to the same end (resume.py).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import pandas as pd
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from .corpus import HeldOutSet
from .count_start import can_start_from_counts, start_from_counts
from .presets import OUTPUT_FLAGS, TRAINING_FLAGS, InputError, flag
from .sources import note
from .device import PRECISIONS, autocast, is_main_process, process_count, process_rank, resolve_precision
from .models import TransformerModel, build_model, family_of, model_device
from .resume import (CountedBatches, StopRequests, TrainingState, TrainingStopped, check_checkpointing,
                     open_resumable, run_settings, write_atomically)
from .tokenizer import TOKENIZER_NAME

HISTORY_COLUMNS = ["model", "epoch", "step", "loss", "tokens", "tokens_per_s", "elapsed_s", "learning_rate",
                   "test_loss", "test_bpc"]
OPTIMIZERS, SCHEDULES, INITS = ("adamw", "adam"), ("cosine", "constant"), ("random", "counts")
AUTO_WARMUP_FRACTION = 0.05  # warm-up steps, as a share of the run, when warmup_steps is None
# The loss path each device trains with by default. On the CPU the fused loss measured as fast as
# the plain one or faster, and in far less memory once a batch outgrows a chunk
# (artefacts/fused_loss.json). On CUDA it bounds the logits' memory, which is what limits a
# 16 GB card; MPS keeps the plain path, unmeasured.
FUSED_LOSS_BY_DEVICE = {"cpu": True, "cuda": True, "mps": False}
EVAL_BATCH_SIZE = 64
TRAINING_CHECKPOINT_SUFFIX = ".training.pt"  # what notebooks name the checkpoints their long runs go on from


STARTER_BATCH = 16  # the starter's batch, and train_model's default
PACKED_CPU_BATCH = 8  # the recipe sweep (benchmarks/recipe_defaults.py): learned most per second on two CPU cores


@dataclass(frozen=True)
class Recipe:
    """How to train: the first weights, optimizer, learning-rate schedule, weight decay and gradient clipping.

    learning_rate is the peak rate; warmup_steps=None warms up over the first twentieth of
    the run. weight_decay applies to weight matrices and embeddings only (AdamW), never to
    biases or norm gains. grad_clip=None turns clipping off. The defaults learned best on real
    text in a measured sweep (benchmarks/recipe_defaults.py, artefacts/recipe_sweep.json).
    init="counts" starts a Transformer with its own head from its training text's bigram counts
    (count_start.py; other models start at random); the command line's packed runs do.
    """

    optimizer: str = field(default="adamw", metadata=flag(
        "--optimizer", group=TRAINING_FLAGS, choices=OPTIMIZERS, default=None,
        help="adamw (weight decay on matrices only) or adam (the starter's)."))
    learning_rate: float = field(default=2e-3, metadata=flag(
        "--learning_rate", group=TRAINING_FLAGS, default=None, help="Peak learning rate."))
    schedule: str = field(default="cosine", metadata=flag(
        "--schedule", group=TRAINING_FLAGS, choices=SCHEDULES, default=None,
        help="cosine: warm-up, then cosine decay to a tenth of the peak. constant: the starter's."))
    warmup_steps: int | None = field(default=None, metadata=flag(
        "--warmup_steps", group=TRAINING_FLAGS, help="Linear warm-up steps."))
    min_lr_ratio: float = 0.1
    weight_decay: float = field(default=0.1, metadata=flag(
        "--weight_decay", group=TRAINING_FLAGS, default=None, help="AdamW weight decay."))
    grad_clip: float | None = field(default=1.0, metadata=flag(
        "--grad_clip", group=TRAINING_FLAGS, default=None, help="Clip the gradient norm to this; 0 turns it off."))
    betas: tuple[float, float] = (0.9, 0.99)
    init: str = field(default="random", metadata=flag(
        "--init", group=TRAINING_FLAGS, choices=INITS, default=None,
        help="counts: a Transformer's embedding and head start as the two factors of the bigram table of its "
             "training text, so that each token's logits rank the next tokens as counting pairs does (the seconds "
             "this takes count in --train_seconds; a k-gram MLP, an LSTM or a Transformer with a tied head starts "
             "at random); random: GPT-2's initialisation."))

    def __post_init__(self):
        checks = [
            (self.optimizer in OPTIMIZERS, f"optimizer={self.optimizer!r} (--optimizer): use adamw or adam"),
            (self.schedule in SCHEDULES, f"schedule={self.schedule!r} (--schedule): use cosine or constant"),
            (self.learning_rate > 0, f"learning_rate={self.learning_rate} (--learning_rate) must be above 0"),
            (self.warmup_steps is None or self.warmup_steps >= 0,
             f"warmup_steps={self.warmup_steps} (--warmup_steps) must be 0 or more"),
            (self.weight_decay >= 0, f"weight_decay={self.weight_decay} (--weight_decay) must be 0 or more"),
            (self.grad_clip is None or self.grad_clip > 0,
             f"grad_clip={self.grad_clip} (--grad_clip) must be above 0, or None to turn clipping off"),
            (0 <= self.min_lr_ratio <= 1, f"min_lr_ratio={self.min_lr_ratio} must lie in [0, 1]"),
            (self.init in INITS, f"init={self.init!r} (--init): use random or counts"),
        ]
        for ok, message in checks:
            if not ok:
                raise InputError(f"Recipe: {message}.")


@dataclass(frozen=True)
class ReplayedRecipe(Recipe):
    """A recipe whose every step's learning rate is given, in order: a recorded run's, replayed (pico-llm --rerun).
    A run budgeted in seconds re-estimates its length, and so its schedule, from its step times; replaying
    the rates it took makes the same run again on any day."""

    rates: tuple[float, ...] = ()


@dataclass(frozen=True)
class Budget:
    """How long a run trains: `max_steps` optimizer steps or `train_seconds` seconds of training (evaluation
    not counted), one of the two. `seconds_spent` of a train_seconds budget went before the first step (fitting
    count models, say): the run trains for the rest. `steps_per_epoch` numbers epochs as the starter did; a
    per-example corpus (the starter's) also draws its batches in epochs of that many steps."""

    max_steps: int | None = field(default=None, metadata=flag(
        "--max_steps", group=TRAINING_FLAGS, help="Train for this many optimizer steps."))
    train_seconds: float | None = field(default=None, metadata=flag(
        "--train_seconds", group=TRAINING_FLAGS,
        help="Train until this many seconds of training have passed (evaluation not counted)."))
    steps_per_epoch: int | None = None
    seconds_spent: float = 0.0


@dataclass(frozen=True)
class Evaluation:
    """When a run measures its held-out loss (and calls on_eval): every `every` steps, every `every_seconds`
    seconds of training, after each step numbered in `at_steps`, and always after the last step."""

    every: int | None = None
    every_seconds: float | None = None
    at_steps: tuple[int, ...] = ()


@dataclass(frozen=True)
class Checkpointing:
    """Where a run keeps its whole state (resume.py): written to `path` every `every` steps, at the end, and when
    SIGINT or SIGTERM stops it; `resume_from`, a checkpoint of the same run, goes on where it stopped. `metadata`
    joins the model's in every checkpoint."""

    path: str | os.PathLike | None = field(default=None, metadata=flag(
        "--save_checkpoint", group=OUTPUT_FLAGS, metavar="PATH",
        help="Save the model and its training state there at the end, every --checkpoint_every steps, and when "
             "Ctrl-C or SIGTERM stops the run (load the model with picollm_helpers.load_checkpoint; go on with "
             "--resume); with several models, one file each, named PATH's stem plus the model's name."))
    every: int | None = field(default=None, metadata=flag(
        "--checkpoint_every", group=OUTPUT_FLAGS, metavar="N",
        help="Also write the checkpoint every N optimizer steps, atomically: a run killed at any moment leaves its "
             "last checkpoint whole."))
    resume_from: str | os.PathLike | None = field(default=None, metadata=flag(
        "--resume", group=OUTPUT_FLAGS, metavar="PATH",
        help="Go on with an interrupted run from its checkpoint: give the same command plus --resume PATH. "
             "Checkpoints go on being written to --save_checkpoint, or to PATH itself when --save_checkpoint is not "
             "given. With several --models, each goes on from its own file (named as --save_checkpoint names them); "
             "one without a file yet starts afresh."))
    metadata: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Arithmetic:
    """How each step computes, which changes its rounding, never its run: the number format ("auto": bf16 or fp16
    on CUDA, fp32 elsewhere), the fused loss (None: the device's default), micro-batches whose gradients add up,
    and torch.compile."""

    precision: str = field(default="auto", metadata=flag(
        "--precision", group=TRAINING_FLAGS, choices=PRECISIONS,
        help="Number format: auto is bf16 on CUDA GPUs that have it, fp16 (with a gradient scaler) on those that do "
             "not, fp32 on the CPU and MPS."))
    fused_loss: bool | None = None
    grad_accum_steps: int = field(default=1, metadata=flag(
        "--grad_accum_steps", group=TRAINING_FLAGS,
        help="Split each batch into this many micro-batches whose gradients add up: the same step in less memory."))
    compile: bool = field(default=False, metadata=flag(
        "--compile", group=TRAINING_FLAGS, action="store_true",
        help="Compile the training step with torch.compile (falls back with a note where it fails)."))


@dataclass(frozen=True)
class TrainingRun:
    """Everything a training run depends on but its model and its data, the defaults in one place.

    batch_size is the global batch: shared among the processes of a data-parallel run and split into
    arithmetic.grad_accum_steps micro-batches, with the same result up to float rounding. Batches are drawn from
    `seed`: the same run gives the same losses."""

    budget: Budget = Budget()
    batch_size: int = field(default=STARTER_BATCH, metadata=flag(
        "--batch_size", group=TRAINING_FLAGS, default=None,
        help=f"Windows (or examples) per step, the global batch under torchrun (default: {PACKED_CPU_BATCH} for "
             f"packed runs on the CPU, where the recipe sweep found them to learn most per second, else the "
             f"starter's {STARTER_BATCH})."))
    seed: int = field(default=0, metadata=flag("--seed", group=TRAINING_FLAGS,
                                               help="Seeds data draws, weights and samples."))
    recipe: Recipe = Recipe()
    evaluation: Evaluation = Evaluation()
    checkpointing: Checkpointing = Checkpointing()
    arithmetic: Arithmetic = Arithmetic()

    @classmethod
    def from_record(cls, record: dict) -> TrainingRun:
        """The run a history, checkpoint or metrics file recorded (run_record), to train again."""
        recipe = {name: tuple(value) if isinstance(value, list) else value
                  for name, value in {**BEFORE_RECORDED, **record["recipe"]}.items()}
        return cls(budget=Budget(**record["budget"]), batch_size=record["batch_size"], seed=record["seed"],
                   recipe=(ReplayedRecipe if "rates" in recipe else Recipe)(**recipe),
                   evaluation=Evaluation(**{**record["evaluation"],
                                            "at_steps": tuple(record["evaluation"]["at_steps"])}),
                   checkpointing=Checkpointing(**record["checkpointing"]), arithmetic=Arithmetic(**record["arithmetic"]))


# What a run recorded before a setting existed did: its record, replayed, means this.
BEFORE_RECORDED = {"init": "random"}

STARTER_RECIPE = Recipe(optimizer="adam", learning_rate=1e-3, schedule="constant", warmup_steps=0,
                        weight_decay=0.0, grad_clip=None, betas=(0.9, 0.999))


def make_optimizer(model: torch.nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    """Adam or AdamW, with the fused kernel where torch has one (on two CPU cores it steps a
    10M-parameter model about five times faster than the per-tensor loop, same update rule)."""
    fused = model_device(model).type in ("cpu", "cuda")
    if recipe.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=recipe.learning_rate, betas=recipe.betas,
                                weight_decay=recipe.weight_decay, fused=fused)
    matrices = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    others = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    groups = [{"params": matrices, "weight_decay": recipe.weight_decay}, {"params": others, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=recipe.learning_rate, betas=recipe.betas, fused=fused)


class Schedule:
    """The learning rate of every step: linear warm-up, then constant or cosine down to min_lr_ratio.

    With max_steps the run's length is known. With train_seconds it is estimated: after every
    step, the steps so far plus the seconds left divided by the mean step time (the first
    step, which also pays one-off costs, is left out once there are others).
    """

    POSITION = ("steps_done", "elapsed", "first_step_s", "planned_steps", "warmup_steps",
                "seconds_spent")  # what a resumed run restores

    def __init__(self, recipe: Recipe, max_steps: int | None = None, train_seconds: float | None = None,
                 seconds_spent: float = 0.0):
        self.recipe, self.max_steps, self.train_seconds = recipe, max_steps, train_seconds
        self.planned_steps = max_steps
        self.warmup_steps = recipe.warmup_steps
        self.steps_done, self.elapsed, self.first_step_s = 0, seconds_spent, 0.0
        self.seconds_spent = seconds_spent  # of the budget, before the first step (fitting count models, say)
        if max_steps is not None:
            self.fix_warmup(max_steps)

    def fix_warmup(self, planned_steps: int) -> None:
        if self.warmup_steps is None:
            self.warmup_steps = round(AUTO_WARMUP_FRACTION * planned_steps)
        elif self.warmup_steps >= planned_steps and self.warmup_steps > 0:
            length = (f"the {planned_steps} steps of max_steps" if self.max_steps is not None else
                      f"the about {planned_steps} steps that fit in train_seconds={self.train_seconds:g}")
            raise InputError(f"warmup_steps={self.warmup_steps} (--warmup_steps) is longer than the run, "
                             f"{length}: lower --warmup_steps or train longer.")

    def update(self, step_seconds: float) -> None:
        """Count one more step and its time; for a time budget, re-estimate the run's length."""
        self.steps_done += 1
        self.elapsed += step_seconds
        if self.steps_done == 1:
            self.first_step_s = step_seconds
        if self.train_seconds is None:
            return
        later_steps = self.steps_done - 1
        stepping = self.elapsed - self.seconds_spent - self.first_step_s
        mean_step_s = stepping / later_steps if later_steps else self.first_step_s
        left = max(0.0, self.train_seconds - self.elapsed)
        self.planned_steps = self.steps_done + round(left / mean_step_s)
        if self.steps_done == 1:
            self.fix_warmup(self.planned_steps)

    @property
    def finished(self) -> bool:
        """Whether the budget is spent: max_steps steps taken, or train_seconds seconds of training."""
        return self.steps_done >= self.max_steps if self.max_steps is not None else self.elapsed >= self.train_seconds

    def state_dict(self) -> dict:
        return {name: getattr(self, name) for name in self.POSITION}

    def load_state_dict(self, state: dict) -> None:
        for name in self.POSITION:
            # checkpoints written before seconds_spent existed spent none
            setattr(self, name, state.get(name, 0.0) if name == "seconds_spent" else state[name])

    def rate(self, step: int) -> float:
        """The learning rate of step `step` (0-based)."""
        recipe, warmup = self.recipe, self.warmup_steps or 0
        if isinstance(recipe, ReplayedRecipe):
            return recipe.rates[step]
        if step < warmup:
            return recipe.learning_rate * (step + 1) / warmup
        if recipe.schedule == "constant" or self.planned_steps is None:
            return recipe.learning_rate
        progress = min(1.0, (step - warmup) / max(1, self.planned_steps - warmup))
        cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
        return recipe.learning_rate * (recipe.min_lr_ratio + (1.0 - recipe.min_lr_ratio) * cosine)


def check_budget(budget: Budget, batch_size: int, grad_accum_steps: int = 1) -> None:
    max_steps, train_seconds = budget.max_steps, budget.train_seconds
    if (max_steps is None) == (train_seconds is None):
        raise InputError("Give one budget: max_steps (--max_steps) or train_seconds (--train_seconds).")
    if max_steps is not None and max_steps < 1:
        raise InputError(f"max_steps={max_steps} (--max_steps) must be at least 1.")
    if train_seconds is not None and not train_seconds > 0:
        raise InputError(f"train_seconds={train_seconds} (--train_seconds) must be above 0: "
                         "it is how many seconds of training to run.")
    if batch_size < 1 or grad_accum_steps < 1:
        raise InputError(f"batch_size={batch_size} (--batch_size) and grad_accum_steps={grad_accum_steps} "
                         "(--grad_accum_steps) must be at least 1.")
    check_batch_split(batch_size, grad_accum_steps, process_count())


def check_batch_split(batch_size: int, grad_accum_steps: int, processes: int) -> None:
    """The batch must share out evenly: among the processes, then into micro-batches."""
    if batch_size % (processes * grad_accum_steps):
        parts = " x ".join(part for part in (f"{processes} processes" if processes > 1 else "",
                                             f"{grad_accum_steps} micro-batches" if grad_accum_steps > 1 else "")
                           if part)
        raise InputError(f"--batch_size {batch_size} does not split evenly into {parts}: use a multiple of "
                         f"{processes * grad_accum_steps}, or change --grad_accum_steps or the number of processes.")


def check_context(model: torch.nn.Module, block_size: int) -> None:
    """A model with a fixed context (the Transformer's max_seq_len) must hold a whole training window."""
    limit = model.settings.max_seq_len if isinstance(model, TransformerModel) else None
    if limit is not None and block_size > limit:
        raise InputError(f"block_size={block_size} (--block_size) is larger than the model's max_seq_len={limit}: "
                         f"lower --block_size to {limit} or less, or build the model with max_seq_len >= {block_size}.")


def targets_in(tokens: torch.Tensor, mask: torch.Tensor | None) -> int:
    """How many next-token predictions a batch holds: every real token but each sequence's first."""
    return int(mask[1:].sum()) if mask is not None else (tokens.shape[0] - 1) * tokens.shape[1]


def default_fused_loss(device: torch.device) -> bool:
    return FUSED_LOSS_BY_DEVICE.get(torch.device(device).type, False)


@dataclass(frozen=True)
class HeldOutLoss:
    """A held-out evaluation: mean full-vocabulary nats per token, every held-out target counted once; the
    same loss in bits per character of the held-out text, a figure that models with other vocabularies
    (or tokenizers) share; and how many tokens it covered."""

    nats_per_token: float
    bits_per_char: float
    tokens: int


@torch.no_grad()
def evaluate(model: torch.nn.Module, corpus, batch_size: int = EVAL_BATCH_SIZE,
             precision: str = "fp32") -> HeldOutLoss:
    """The held-out loss of a corpus (or held-out set) in nats per token and bits per character (NaN if
    it holds nothing).

    In a data-parallel run each process evaluates its share of the batches and the sums are added up.
    """
    device = model_device(model)
    was_training = model.training
    model.eval()
    rank, processes = process_rank(), process_count()
    sums = torch.zeros(2, dtype=torch.float64, device=device)  # nats, targets
    for index, (tokens, mask) in enumerate(corpus.heldout_batches(batch_size)):
        if index % processes != rank:
            continue
        tokens, mask = tokens.to(device), None if mask is None else mask.to(device)
        targets = targets_in(tokens, mask)
        with autocast(device, precision):
            sums[0] += float(model.next_token_loss(tokens, mask, fused=True)) * targets
        sums[1] += targets
    if processes > 1:
        dist.all_reduce(sums)
    model.train(was_training)
    nats, targets = float(sums[0]), int(sums[1])
    characters = corpus.heldout_characters
    return HeldOutLoss(nats / targets if targets else math.nan,
                       nats / math.log(2) / characters if characters else math.nan, targets)


def evaluate_each(model: torch.nn.Module, heldout, batch_size: int = EVAL_BATCH_SIZE,
                  precision: str = "fp32") -> dict[str, HeldOutLoss]:
    """The held-out loss of each held-out stream of a packed corpus (each --eval_files file, say), by its name."""
    return {stream.name: evaluate(model, HeldOutSet([stream], heldout.block_size), batch_size, precision)
            for stream in heldout.heldout}


class StepLoss(torch.nn.Module):
    """A model's training loss as a module's forward, so that DistributedDataParallel and
    torch.compile can wrap it (both work on `forward`)."""

    def __init__(self, model: torch.nn.Module, fused: bool):
        super().__init__()
        self.model, self.fused = model, fused

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.model.next_token_loss(tokens, mask, fused=self.fused)


def training_loss(model: torch.nn.Module, fused: bool, compile: bool) -> torch.nn.Module:
    """The module that computes the training loss: the model's, shared among processes by DDP in a
    data-parallel run, compiled with torch.compile when asked. Each run compiles afresh, as in a new
    process: the compiled code of earlier runs would otherwise count against torch's limit of
    recompilations, past which it runs uncompiled without a word."""
    loss = StepLoss(model, fused)
    if process_count() > 1:
        device = model_device(model)
        loss = DistributedDataParallel(loss, device_ids=[device.index] if device.type == "cuda" else None)
    if not compile:
        return loss
    torch.compiler.reset()
    return torch.compile(loss)


def micro_batches(tokens: torch.Tensor, mask: torch.Tensor | None, grad_accum_steps: int):
    """This process's slice of the global batch (its columns), split into grad_accum_steps micro-batches."""
    share = tokens.shape[1] // process_count()
    size = share // grad_accum_steps
    columns = range(process_rank() * share, (process_rank() + 1) * share, size)
    return [(tokens[:, start:start + size], None if mask is None else mask[:, start:start + size]) for start in columns]


def global_count(count: int, device) -> int:
    """A count summed over the processes of a data-parallel run (itself when this process runs alone)."""
    if process_count() == 1:
        return count
    total = torch.tensor(count, dtype=torch.float64, device=device)
    dist.all_reduce(total)
    return int(total.item())


def take_step(loss_module, optimizer, scaler, parts, recipe: Recipe, precision: str, device) -> torch.Tensor:
    """One optimizer step over this process's micro-batches; the step's mean loss over the global batch.

    Each micro-batch's mean loss is weighted by its share of the global batch's targets, so that
    the summed gradient is that of the global mean, whatever the micro-batches and processes
    (DDP averages gradients over processes, hence the factor of process_count()).
    """
    counts = [targets_in(tokens, mask) for tokens, mask in parts]
    total = global_count(sum(counts), device)
    weighted = torch.zeros((), dtype=torch.float64, device=device)
    optimizer.zero_grad(set_to_none=True)
    for index, ((tokens, mask), count) in enumerate(zip(parts, counts)):
        with synchronized_if(loss_module, last_micro_batch=index == len(parts) - 1):
            with autocast(device, precision):
                loss = loss_module(tokens, mask)
            scaler.scale(loss * (count * process_count() / total)).backward()
        weighted += loss.detach().double() * count
    if recipe.grad_clip is not None:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(optimizer_parameters(optimizer), recipe.grad_clip)
    scaler.step(optimizer)
    scaler.update()
    if process_count() > 1:
        dist.all_reduce(weighted)
    return weighted / total


def synchronized_if(loss_module, last_micro_batch: bool):
    """DDP's gradient exchange only after the last micro-batch of a step (no_sync before it)."""
    ddp = getattr(loss_module, "_orig_mod", loss_module)
    if isinstance(ddp, DistributedDataParallel) and not last_micro_batch:
        return ddp.no_sync()
    return contextlib.nullcontext()


def optimizer_parameters(optimizer) -> list[torch.nn.Parameter]:
    return [parameter for group in optimizer.param_groups for parameter in group["params"]]


class Progress:
    """A progress bar over steps, or over seconds for a time budget, showing the time left."""

    def __init__(self, name: str, max_steps: int | None, train_seconds: float | None, enabled: bool,
                 schedule: Schedule):
        self.by_time = train_seconds is not None
        total, done = (train_seconds, schedule.elapsed) if self.by_time else (max_steps, schedule.steps_done)
        unit_format = "{l_bar}{bar}| {n:.0f}/{total:.0f} s [left {remaining}]" if self.by_time else None
        self.bar = tqdm(total=total, initial=min(done, total), desc=name, disable=None if enabled else True,
                        leave=False, bar_format=unit_format)

    def advance(self, seconds: float, loss: float) -> None:
        self.bar.set_postfix(loss=f"{loss:.3f}", refresh=False)
        self.bar.update(min(seconds, self.bar.total - self.bar.n) if self.by_time else 1)

    def close(self) -> None:
        self.bar.close()


def train_model(model: torch.nn.Module, corpus, run: TrainingRun, *, heldout=None, on_eval=None,
                name: str | None = None, progress: bool = True) -> pd.DataFrame:
    """Train on a corpus (packed or per-example) as `run` describes; return one row per optimizer step.

    Columns: model, epoch, step, loss (training, full-vocabulary nats), tokens (targets in the
    step), tokens_per_s, elapsed_s (training time so far, evaluation and checkpoints excluded),
    learning_rate, test_loss and test_bpc (held-out nats per token and bits per character at the
    points run.evaluation names, NaN elsewhere); `history.attrs` holds how it trained (precision,
    processes, grad_accum_steps, compiled, and seconds_starting_from_counts where it started from counts). The
    held-out part is `heldout`'s (another corpus, so that
    runs on different data paths are measured alike) or else the corpus's own. `on_eval(step, model)`,
    if given, is called at those same points (a sample, say), outside the timed training. `name` labels
    the progress bar and the history's rows.

    With run.checkpointing.path, the run's whole state is written there (resume.py), and a run stopped by
    SIGINT or SIGTERM after the step under way raises TrainingStopped (a KeyboardInterrupt). With
    run.checkpointing.resume_from, a checkpoint of this model trained as `run`, it goes on where it
    stopped: the history is the whole run's, and `history.attrs["resumed_from_step"]` says where it went on.
    """
    budget, arithmetic, checkpoints = run.budget, run.arithmetic, run.checkpointing
    check_budget(budget, run.batch_size, arithmetic.grad_accum_steps)
    check_context(model, corpus.block_size)
    check_checkpointing(checkpoints.path, checkpoints.every)
    name = name or family_of(model)
    device = model_device(model)
    precision = resolve_precision(arithmetic.precision, device)
    fused_loss = default_fused_loss(device) if arithmetic.fused_loss is None else arithmetic.fused_loss
    compile = arithmetic.compile
    starting_seconds = start_as_recipe_says(model, corpus, run)
    optimizer = make_optimizer(model, run.recipe)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    schedule = Schedule(run.recipe, budget.max_steps, budget.train_seconds, budget.seconds_spent + starting_seconds)
    heldout = heldout or corpus
    # Only the per-example corpus draws by epochs (the starter's); a packed one draws windows for ever,
    # and steps_per_epoch only numbers its steps.
    batches = CountedBatches(corpus.train_batches(run.batch_size, run.seed) if corpus.packed
                             else corpus.train_batches(run.batch_size, run.seed, budget.steps_per_epoch))
    settings = run_settings(corpus, run)
    state = TrainingState(optimizer, scaler, schedule, batches, settings, device,
                          next_eval_s=run.evaluation.every_seconds)
    if checkpoints.resume_from is not None:
        state.resume(open_resumable(checkpoints.resume_from, family_of(model), model.config, model.vocabulary.ids(),
                                    settings), checkpoints.resume_from, model)
    loss_module = training_loss(model, fused_loss, compile)
    rows = state.rows
    first_step = len(rows)  # 0, or where a resumed run goes on

    def write_checkpoint() -> None:
        record = training_record(run, precision, compile, state.resumed_from_step)
        save_training_checkpoint(checkpoints.path, model, state, **record, **checkpoints.metadata, steps=len(rows))

    bar = Progress(name, budget.max_steps, budget.train_seconds, progress and is_main_process(), schedule)
    model.train()
    done = schedule.finished
    with StopRequests() as stop:
        while not done:
            step = len(rows)
            started = time.perf_counter()
            tokens, mask = next(batches)
            tokens, mask = tokens.to(device), None if mask is None else mask.to(device)
            learning_rate = schedule.rate(step)
            for group in optimizer.param_groups:
                group["lr"] = learning_rate
            parts = micro_batches(tokens, mask, arithmetic.grad_accum_steps)
            try:
                loss = take_step(loss_module, optimizer, scaler, parts, run.recipe, precision, device)
            except Exception as error:  # noqa: BLE001 (torch.compile raises many kinds, all on the first step)
                if not compile or step > first_step:
                    raise
                note(f"Note: --compile failed on this machine ({type(error).__name__}); training without it.")
                loss_module, compile = training_loss(model, fused_loss, compile=False), False
                loss = take_step(loss_module, optimizer, scaler, parts, run.recipe, precision, device)
            loss_value = loss.item()  # waits for the device, so the timing is honest
            step_seconds = shared_seconds(time.perf_counter() - started, device)
            schedule.update(step_seconds)
            done = schedule.finished
            due = evaluation_due(run.evaluation, state, step + 1, schedule.elapsed)
            test = evaluate(model, heldout, precision=precision) if heldout.has_heldout and (due or done) else None
            if on_eval is not None and (due or done):
                on_eval(step + 1, model)
            count = targets_in(tokens, mask)
            epoch = step // budget.steps_per_epoch + 1 if budget.steps_per_epoch else 1
            rows.append((name, epoch, step + 1, loss_value, count, count / step_seconds, schedule.elapsed,
                         learning_rate, *((test.nats_per_token, test.bits_per_char) if test else (math.nan, math.nan))))
            bar.advance(step_seconds, loss_value)
            if checkpoints.every and (step + 1) % checkpoints.every == 0 and not done:
                write_checkpoint()
            if stop.agreed(device):
                break
        bar.close()
        history = pd.DataFrame(rows, columns=HISTORY_COLUMNS)
        history.attrs.update(training_record(run, precision, compile, state.resumed_from_step))
        if starting_seconds:
            history.attrs["seconds_starting_from_counts"] = starting_seconds
        model.trained_with = dict(history.attrs)  # what save_checkpoint records of how the model trained
        if checkpoints.path is not None:
            write_checkpoint()  # under the stop requests, so that torchrun's forwarded signal, if late, only asks again
        if stop.stopping is not None:
            raise TrainingStopped(stop.stopping, len(rows), schedule.planned_steps, budget.train_seconds is not None,
                                  None if checkpoints.path is None else Path(checkpoints.path))
    return history


def start_as_recipe_says(model: torch.nn.Module, corpus, run: TrainingRun) -> float:
    """Start the model from counts where the recipe asks it to and the model can (not when going on from a
    checkpoint, whose weights replace any start); the seconds that took, which a budget in seconds counts."""
    if run.recipe.init != "counts" or run.checkpointing.resume_from is not None or not can_start_from_counts(model):
        return 0.0
    started = time.perf_counter()
    start_from_counts(model, corpus.train_streams())
    return time.perf_counter() - started


def evaluation_due(evaluation: Evaluation, state: TrainingState, steps_done: int, elapsed: float) -> bool:
    """Whether the step just taken is one `evaluation` names (the last step is measured anyway)."""
    due = bool(evaluation.every and steps_done % evaluation.every == 0) or steps_done in evaluation.at_steps
    if state.next_eval_s is not None and elapsed >= state.next_eval_s:
        due, state.next_eval_s = True, state.next_eval_s + evaluation.every_seconds
    return due


def training_record(run: TrainingRun, precision: str, compiled: bool, resumed_from_step: int | None) -> dict:
    """How a run trains, as its history's attrs (and so its metrics and artefacts) and its checkpoints record it:
    the whole run description, and what it resolved to on this machine."""
    record = dict(precision=precision, processes=process_count(), grad_accum_steps=run.arithmetic.grad_accum_steps,
                  compiled=compiled, run=run_record(run))
    return record if resumed_from_step is None else {**record, "resumed_from_step": resumed_from_step}


def run_record(run: TrainingRun) -> dict:
    """A run description as JSON stores it (paths as text)."""
    return json.loads(json.dumps(asdict(run), default=str))


def how_it_trained(history: pd.DataFrame) -> dict:
    """What a record of a run keeps to train it again: its whole description and, where it was budgeted in seconds
    (or was itself a replay), the learning rate of every step it took."""
    run = history.attrs["run"]
    if run["budget"]["train_seconds"] or "rates" in run["recipe"]:
        return {"run": run, "learning_rates": history["learning_rate"].tolist()}
    return {"run": run}


def replaying(run: TrainingRun, rates) -> TrainingRun:
    """The run taking exactly the steps a recorded one took, at the rates it took them at (`rates`, one per step);
    the run itself where none were recorded. A run budgeted in seconds plans its schedule from its step times, so
    replaying its rates is what makes the same run again."""
    if not rates:
        return run
    return replace(run, budget=Budget(max_steps=len(rates)), recipe=ReplayedRecipe(**{
        **asdict(run.recipe), "rates": tuple(rates)}))


def shared_seconds(seconds: float, device) -> float:
    """A step's time, the same in every process of a data-parallel run (their mean), so that all of
    them plan the same schedule and stop at the same step."""
    if process_count() == 1:
        return seconds
    total = torch.tensor([seconds], dtype=torch.float64, device=device)
    dist.all_reduce(total)
    return float(total) / process_count()


def epoch_losses(history: pd.DataFrame) -> pd.Series:
    """Mean training loss of each epoch."""
    return history.groupby("epoch")["loss"].mean()


def run_summary(history: pd.DataFrame) -> dict:
    """What a run's metrics file and artefacts report of a history: losses (the held-out one in nats per
    token and bits per character), steps, tokens and speed."""
    tested = history.dropna(subset=["test_loss"])
    seconds = float(history["elapsed_s"].iloc[-1])
    return {"heldout_loss": float(tested["test_loss"].iloc[-1]) if len(tested) else None,
            "heldout_bits_per_char": float(tested["test_bpc"].iloc[-1]) if len(tested) else None,
            "train_loss": float(history["loss"].iloc[-1]), "steps": int(history["step"].iloc[-1]),
            "tokens_seen": int(history["tokens"].sum()), "tokens_per_s": float(history["tokens"].sum() / seconds),
            "train_seconds": seconds, **history.attrs}


# ---------------------------------------------------------------- checkpoints


def checkpoint_payload(model: torch.nn.Module, **metadata) -> dict:
    """Weights plus what rebuilds the model (family, config, vocabulary and its bucket's prior, tokenizer); the
    metadata includes how train_model trained it (precision, processes, micro-batches, compiled)."""
    return {"family": family_of(model), "config": model.config, "vocab_ids": model.vocabulary.ids(),
            "bucket": model.vocabulary.prior, "tokenizer": TOKENIZER_NAME, "state_dict": model.state_dict(),
            "metadata": {**getattr(model, "trained_with", {}), **metadata}}


def save_checkpoint(model: torch.nn.Module, path: str | os.PathLike, **metadata) -> Path:
    """A model's checkpoint (checkpoint_payload), written atomically by the main process alone in a
    data-parallel run."""
    return write_atomically(checkpoint_payload(model, **metadata), path)


def save_training_checkpoint(path: str | os.PathLike, model: torch.nn.Module, state: TrainingState,
                             **metadata) -> Path:
    """A model's checkpoint plus its run's state (resume.py), which load_checkpoint reads like any other. In a
    data-parallel run rank 0 writes while the others wait, so that none leaves before the file is whole."""
    write_atomically({**checkpoint_payload(model, **metadata), "training": state.state_dict()}, path)
    if process_count() > 1:
        dist.barrier()
    return Path(path)


def load_checkpoint(path: str | os.PathLike, device=None) -> torch.nn.Module:
    """Rebuild a saved model in eval mode; its metadata is at `model.checkpoint_metadata`."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"No checkpoint at {path}: train the model first (notebooks 01 to 03 save theirs).")
    try:
        payload = torch.load(path, map_location=device or "cpu", weights_only=True)
    except Exception as error:  # a truncated or foreign file: torch raises many kinds
        raise InputError(f"{path} is not a pico-llm checkpoint ({type(error).__name__}): save it again.") from None
    if payload.get("tokenizer") != TOKENIZER_NAME:
        raise InputError(f"{path} was trained with tokenizer {payload.get('tokenizer')!r}, not {TOKENIZER_NAME!r}.")
    if "vocab_ids" not in payload:
        raise InputError(f"{path} has no id map (vocab_ids): it was saved by an older pico-llm; save it again.")
    try:
        # Checkpoints written before the bucket had a prior were trained with the uniform one.
        model = build_model(payload["family"], **payload["config"], vocab_ids=payload["vocab_ids"],
                            bucket=payload.get("bucket", "uniform"))
        model.load_state_dict(payload["state_dict"])
    except (ValueError, TypeError, RuntimeError) as error:
        raise InputError(f"{path}: its id map (vocab_ids) or weights are damaged ({error}).") from None
    model.checkpoint_metadata = payload["metadata"]
    return model.to(device or "cpu").eval()


def checkpoint_label(path: Path) -> str:
    """A model's display name from its checkpoint's file name: lstm -> LSTM, kgram_conv -> k-gram conv."""
    family, _, variant = path.stem.partition("_")
    return {"lstm": "LSTM", "kgram": f"k-gram {variant}"}.get(family, variant or family)


def load_checkpoints(folder: str | os.PathLike, device=None) -> dict[str, torch.nn.Module]:
    """Every model checkpoint in a folder, rebuilt, by display name: the LSTM, the k-gram designs, then the
    Transformers. The training checkpoints an interrupted run left (*.training.pt) are not models to sample."""
    order = {"lstm": 0, "kgram": 1, "transformer": 2}
    paths = sorted((path for path in Path(folder).glob("*.pt") if not path.name.endswith(TRAINING_CHECKPOINT_SUFFIX)),
                   key=lambda p: (order.get(p.stem.partition("_")[0], 3), p.stem))
    return {checkpoint_label(path): load_checkpoint(path, device) for path in paths}
