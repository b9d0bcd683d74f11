"""Section 7. Training and evaluation: the recipe, train_model's per-step history, checkpoints.

The recipe is what people train small GPTs with today (nanoGPT's): AdamW with weight decay on
the weight matrices only, a linear warm-up, a cosine decay to a tenth of the peak rate, and
gradient-norm clipping at 1.0. `STARTER_RECIPE` is the starter's plain Adam at a constant
rate, which the course notes' runs use.

A run is as long as its budget: `max_steps` optimizer steps, or `train_seconds` of training
(evaluation not counted), in which case the step count the cosine spans is estimated from the
time the steps take, and corrected after every step.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from tqdm.auto import tqdm

from .data import InputError
from .models import TransformerModel, build_model, family_of
from .tokenizer import TOKENIZER_NAME

HISTORY_COLUMNS = ["model", "epoch", "step", "loss", "tokens", "tokens_per_s", "elapsed_s", "learning_rate",
                   "test_loss"]
OPTIMIZERS, SCHEDULES = ("adamw", "adam"), ("cosine", "constant")
AUTO_WARMUP_FRACTION = 0.05  # warm-up steps, as a share of the run, when warmup_steps is None
# The loss path each device trains with by default (artefacts/fused_loss.json has the measurements).
FUSED_LOSS_BY_DEVICE = {"cpu": True, "cuda": True, "mps": False}
EVAL_BATCH_SIZE = 64


@dataclass(frozen=True)
class Recipe:
    """How to train: optimizer, learning-rate schedule, weight decay and gradient clipping.

    learning_rate is the peak rate; warmup_steps=None warms up over the first twentieth of
    the run. weight_decay applies to weight matrices and embeddings only (AdamW), never to
    biases or norm gains. grad_clip=None turns clipping off. The defaults learned best on real
    text in a measured sweep (benchmarks/recipe_defaults.py, artefacts/recipe_sweep.json).
    """

    optimizer: str = "adamw"
    learning_rate: float = 2e-3
    schedule: str = "cosine"
    warmup_steps: int | None = None
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.1
    grad_clip: float | None = 1.0
    betas: tuple[float, float] = (0.9, 0.99)

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
        ]
        for ok, message in checks:
            if not ok:
                raise InputError(f"Recipe: {message}.")


STARTER_RECIPE = Recipe(optimizer="adam", learning_rate=1e-3, schedule="constant", warmup_steps=0,
                        weight_decay=0.0, grad_clip=None, betas=(0.9, 0.999))


def model_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


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

    def __init__(self, recipe: Recipe, max_steps: int | None = None, train_seconds: float | None = None):
        self.recipe, self.max_steps, self.train_seconds = recipe, max_steps, train_seconds
        self.planned_steps = max_steps
        self.warmup_steps = recipe.warmup_steps
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

    def update(self, steps_done: int, step_seconds: list[float]) -> None:
        """Re-estimate the run's length from the step times so far (time budgets only)."""
        if self.train_seconds is None:
            return
        timed = step_seconds[1:] or step_seconds
        left = max(0.0, self.train_seconds - sum(step_seconds))
        self.planned_steps = steps_done + round(left / (sum(timed) / len(timed)))
        if steps_done == 1:
            self.fix_warmup(self.planned_steps)

    def rate(self, step: int) -> float:
        """The learning rate of step `step` (0-based)."""
        recipe, warmup = self.recipe, self.warmup_steps or 0
        if step < warmup:
            return recipe.learning_rate * (step + 1) / warmup
        if recipe.schedule == "constant" or self.planned_steps is None:
            return recipe.learning_rate
        progress = min(1.0, (step - warmup) / max(1, self.planned_steps - warmup))
        cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
        return recipe.learning_rate * (recipe.min_lr_ratio + (1.0 - recipe.min_lr_ratio) * cosine)


def check_budget(max_steps: int | None, train_seconds: float | None, batch_size: int) -> None:
    if (max_steps is None) == (train_seconds is None):
        raise InputError("Give one budget: max_steps (--max_steps) or train_seconds (--train_seconds).")
    if max_steps is not None and max_steps < 1:
        raise InputError(f"max_steps={max_steps} (--max_steps) must be at least 1.")
    if train_seconds is not None and not train_seconds > 0:
        raise InputError(f"train_seconds={train_seconds} (--train_seconds) must be above 0: "
                         "it is how many seconds of training to run.")
    if batch_size < 1:
        raise InputError(f"batch_size={batch_size} (--batch_size) must be at least 1.")


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


@torch.no_grad()
def evaluate(model: torch.nn.Module, corpus, batch_size: int = EVAL_BATCH_SIZE) -> float:
    """Mean full-vocabulary nats per held-out token, every held-out target counted once (NaN if none)."""
    device = model_device(model)
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for tokens, mask in corpus.heldout_batches(batch_size):
        tokens, mask = tokens.to(device), None if mask is None else mask.to(device)
        targets = targets_in(tokens, mask)
        total += float(model.next_token_loss(tokens, mask, fused=True)) * targets
        count += targets
    model.train(was_training)
    return total / count if count else math.nan


class Progress:
    """A progress bar over steps, or over seconds for a time budget, showing the time left."""

    def __init__(self, name: str, max_steps: int | None, train_seconds: float | None, enabled: bool):
        self.by_time = train_seconds is not None
        total = train_seconds if self.by_time else max_steps
        unit_format = "{l_bar}{bar}| {n:.0f}/{total:.0f} s [left {remaining}]" if self.by_time else None
        self.bar = tqdm(total=total, desc=name, disable=None if enabled else True, leave=False,
                        bar_format=unit_format)

    def advance(self, seconds: float, loss: float) -> None:
        self.bar.set_postfix(loss=f"{loss:.3f}", refresh=False)
        self.bar.update(min(seconds, self.bar.total - self.bar.n) if self.by_time else 1)

    def close(self) -> None:
        self.bar.close()


def train_model(model: torch.nn.Module, corpus, *, batch_size: int = 16, max_steps: int | None = None,
                train_seconds: float | None = None, recipe: Recipe = Recipe(), steps_per_epoch: int | None = None,
                eval_every: int | None = None, eval_every_seconds: float | None = None,
                fused_loss: bool | None = None, seed: int = 0, heldout=None, on_eval=None,
                name: str | None = None, progress: bool = True) -> pd.DataFrame:
    """Train on a corpus (packed or per-example) within a budget; return one row per optimizer step.

    Columns: model, epoch, step, loss (training, full-vocabulary nats), tokens (targets in the
    step), tokens_per_s, elapsed_s (training time so far, evaluation excluded), learning_rate
    and test_loss (held-out, every eval_every steps or eval_every_seconds of training, and
    after the last step; NaN elsewhere). The held-out part is `heldout`'s (another corpus, so
    that runs on different data paths are measured alike) or else the corpus's own.
    `on_eval(step, model)`, if given, is called at those same points (a sample, say), outside
    the timed training. Batches are drawn from `seed`; the same seed and max_steps give the
    same losses. `steps_per_epoch` numbers epochs as the starter did.
    """
    check_budget(max_steps, train_seconds, batch_size)
    check_context(model, corpus.block_size)
    name = name or family_of(model)
    device = model_device(model)
    fused_loss = default_fused_loss(device) if fused_loss is None else fused_loss
    optimizer = make_optimizer(model, recipe)
    schedule = Schedule(recipe, max_steps, train_seconds)
    heldout = heldout or corpus
    # Only the per-example corpus draws by epochs (the starter's); a packed one draws windows for ever,
    # and steps_per_epoch only numbers its steps.
    batches = (corpus.train_batches(batch_size, seed) if corpus.packed
               else corpus.train_batches(batch_size, seed, steps_per_epoch))
    rows, step_seconds, next_eval_s = [], [], eval_every_seconds
    bar = Progress(name, max_steps, train_seconds, progress)
    model.train()
    while True:
        step = len(rows)
        started = time.perf_counter()
        tokens, mask = next(batches)
        tokens, mask = tokens.to(device), None if mask is None else mask.to(device)
        learning_rate = schedule.rate(step)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate
        loss = model.next_token_loss(tokens, mask, fused=fused_loss)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if recipe.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
        optimizer.step()
        loss_value = loss.item()  # waits for the device, so the timing is honest
        step_seconds.append(time.perf_counter() - started)
        schedule.update(step + 1, step_seconds)
        elapsed = sum(step_seconds)
        done = step + 1 >= max_steps if max_steps is not None else elapsed >= train_seconds
        due = bool(eval_every and (step + 1) % eval_every == 0)
        if next_eval_s is not None and elapsed >= next_eval_s:
            due, next_eval_s = True, next_eval_s + eval_every_seconds
        test_loss = evaluate(model, heldout) if heldout.has_heldout and (due or done) else math.nan
        if on_eval is not None and (due or done):
            on_eval(step + 1, model)
        count = targets_in(tokens, mask)
        epoch = step // steps_per_epoch + 1 if steps_per_epoch else 1
        rows.append((name, epoch, step + 1, loss_value, count, count / step_seconds[-1], elapsed, learning_rate,
                     test_loss))
        bar.advance(step_seconds[-1], loss_value)
        if done:
            break
    bar.close()
    return pd.DataFrame(rows, columns=HISTORY_COLUMNS)


def epoch_losses(history: pd.DataFrame) -> pd.Series:
    """Mean training loss of each epoch."""
    return history.groupby("epoch")["loss"].mean()


def run_summary(history: pd.DataFrame) -> dict:
    """What a run's metrics file and artefacts report of a history: losses, steps, tokens and speed."""
    tested = history["test_loss"].dropna()
    seconds = float(history["elapsed_s"].iloc[-1])
    return {"heldout_loss": float(tested.iloc[-1]) if len(tested) else None,
            "train_loss": float(history["loss"].iloc[-1]), "steps": int(history["step"].iloc[-1]),
            "tokens_seen": int(history["tokens"].sum()), "tokens_per_s": float(history["tokens"].sum() / seconds),
            "train_seconds": seconds}


# ---------------------------------------------------------------- checkpoints


def save_checkpoint(model: torch.nn.Module, path: str | os.PathLike, **metadata) -> Path:
    """Weights plus what rebuilds the model (family, config, vocabulary, tokenizer), written atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"family": family_of(model), "config": model.config, "vocab_ids": model.vocabulary.ids(),
               "tokenizer": TOKENIZER_NAME, "state_dict": model.state_dict(), "metadata": metadata}
    temporary = path.with_name(f".{path.name}.tmp")
    torch.save(payload, temporary)
    os.replace(temporary, path)
    return path


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
        model = build_model(payload["family"], **payload["config"], vocab_ids=payload["vocab_ids"])
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
    """Every checkpoint in a folder, rebuilt, by display name: the LSTM, the k-gram designs, then the Transformers."""
    order = {"lstm": 0, "kgram": 1, "transformer": 2}
    paths = sorted(Path(folder).glob("*.pt"), key=lambda p: (order.get(p.stem.partition("_")[0], 3), p.stem))
    return {checkpoint_label(path): load_checkpoint(path, device) for path in paths}
