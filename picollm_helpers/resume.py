"""Section 7 (continued). Training that survives a disconnect: the training checkpoint, and resuming from it.

Colab ends idle sessions and caps long ones, a laptop sleeps, a torchrun job loses a node. A run
given a checkpoint path keeps its whole state in that one file: every `Checkpointing.every` steps,
when SIGINT (Ctrl-C, Jupyter's interrupt) or SIGTERM stops it, and at its end. A notebook picks up
where an interrupted run stopped with

    path = CHECKPOINT_DIR / "writer.pt"
    run = h.TrainingRun(budget=h.Budget(max_steps=3_000), checkpointing=h.Checkpointing(
        path=path, every=100, resume_from=h.resume_point(path)))  # None, a fresh start, until the file exists
    history = h.train_model(model, corpus, run)

and the command line with the same command plus `--resume run.pt`. A resumed run ends as the
uninterrupted one would have, with the same parameters after the same steps, and returns the whole
run's history; `history.attrs["resumed_from_step"]` says where it went on. A checkpoint of a
finished run resumes to its history at once, training nothing more.

A training checkpoint is a model checkpoint (family, config, vocab_ids, tokenizer, state_dict,
metadata: what `load_checkpoint` rebuilds a model from, so that it samples like any other) plus
"training":

  optimizer, scaler   the optimizer's moments and step counts; the fp16 gradient scaler's scale
  schedule            steps done, seconds of training spent, the steps planned, the warm-up
  random_states       the global random states of Python, NumPy and torch (and the CUDA device's)
  batches_drawn       how many batches the data sampler has drawn
  history             the finished steps' rows
  settings            what a resumed run must share with it: batch size, seed, budget, recipe, data shape

It is written beside its path and renamed into place, so that a kill at any moment leaves the last
good checkpoint whole. In a data-parallel run rank 0 writes while the others wait, and every rank
reads the same file to resume.

Why the data sampler is replayed rather than saved: `corpus.train_batches(batch_size, seed)` draws
from generators it keeps to itself, a seeded torch.Generator (packed windows), or a DataLoader with
its own seeded generator plus Python's global `random` (the starter's examples). A resumed run
rebuilds the stream from the same seed and draws, and drops, as many batches as the run had drawn,
which brings those generators to where they were; then it restores the global random states saved
with the checkpoint, Python's among them, so that its next batch is the one the uninterrupted run
drew next. That is exact for both kinds of corpus, and drawing a batch costs far less than training
on it.
"""

from __future__ import annotations

import errno
import os
import random
import signal
import threading
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from .presets import InputError
from .device import is_main_process, process_count
from .tokenizer import TOKENIZER_NAME

TRAINING_FORMAT = 1  # the layout of a checkpoint's "training" part; a reader refuses any other
MODEL_KEYS = {"family", "config", "vocab_ids", "tokenizer", "state_dict", "metadata"}
TRAINING_KEYS = {"format", "optimizer", "scaler", "schedule", "random_states", "batches_drawn", "history",
                 "next_eval_s", "settings"}
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
START_AGAIN = "or start a new run without --resume (Checkpointing(resume_from=None))"
# The flag that sets each setting a checkpoint must share with the run that resumes it.
SETTING_FLAGS = {
    "family": "--models", "batch_size": "--batch_size", "seed": "--seed", "max_steps": "--max_steps", "train_seconds": "--train_seconds",
    "steps_per_epoch": "--max_steps_per_epoch", "block_size": "--block_size", "packed": "--packing",
    "optimizer": "--optimizer", "learning_rate": "--learning_rate", "schedule": "--schedule",
    "warmup_steps": "--warmup_steps", "weight_decay": "--weight_decay", "grad_clip": "--grad_clip",
    "d_model": "--d_model", "n_heads": "--n_heads", "n_blocks": "--n_blocks", "d_ff": "--d_ff",
    "norm": "--transformer_variant", "positions": "--transformer_variant", "ffn": "--transformer_variant",
    "tie_weights": "--transformer_variant", "n_kv_heads": "--transformer_variant", "max_seq_len": "--block_size",
    "embed_size": "--embed_size", "hidden_size": "--embed_size", "k": "--kgram_k",
    "num_inner_layers": "--num_inner_mlp_layers", "chunk_size": "--kgram_chunk_size", "variant": "--kgram_variant",
}


# ---------------------------------------------------------------- writing and finding checkpoints


def write_atomically(payload: dict, path: str | os.PathLike) -> Path:
    """torch.save to a temporary file beside `path`, flushed to the disk, then renamed into place: a kill at any
    moment leaves the old file or the new one, whole. Only the main process of a data-parallel run writes."""
    path = Path(path)
    if not is_main_process():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        with open(temporary, "wb") as file:
            torch.save(payload, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        remedy = "free some space or write it elsewhere" if error.errno == errno.ENOSPC else "write it elsewhere"
        raise InputError(f"Could not write {path} ({error.strerror or error}): {remedy}; the checkpoint already "
                         "there, if any, is kept whole.") from None
    return path


def resume_point(path: str | os.PathLike) -> Path | None:
    """The checkpoint an interrupted run left at `path`, to resume from; None (start afresh) when there is none."""
    path = Path(path)
    return path if path.is_file() else None


def check_checkpointing(checkpoint_path, checkpoint_every: int | None) -> None:
    if checkpoint_every is None:
        return
    if checkpoint_every < 1:
        raise InputError(f"Checkpointing(every={checkpoint_every}) (--checkpoint_every) must be at least 1.")
    if checkpoint_path is None:
        raise InputError(f"Checkpointing(every={checkpoint_every}) (--checkpoint_every) needs a file to write to: "
                         "give it a path (--save_checkpoint run.pt).")


# ---------------------------------------------------------------- reading and checking them


def read_training_checkpoint(path: str | os.PathLike) -> dict:
    """A training checkpoint's contents, on the CPU. A missing, truncated or corrupt file, or one that holds a
    model but no training state, is one InputError naming it."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"No checkpoint at {path} to resume from: check the path (--resume), {START_AGAIN}.")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 (a damaged file makes torch raise many kinds)
        raise InputError(f"{path} is truncated or corrupt ({type(error).__name__}): resume from a good copy, "
                         f"{START_AGAIN}.") from None
    if not isinstance(payload, dict) or not MODEL_KEYS <= payload.keys():
        raise InputError(f"{path} is not a pico-llm checkpoint: resume from the file --save_checkpoint wrote, "
                         f"{START_AGAIN}.")
    training = payload.get("training")
    if training is None:
        raise InputError(f"{path} holds a model but no training state (save_checkpoint or an earlier pico-llm "
                         "wrote it): load_checkpoint rebuilds it to sample from; to resume a run, train it with a "
                         "checkpoint path (--save_checkpoint).")
    if not isinstance(training, dict) or training.get("format") != TRAINING_FORMAT \
            or not TRAINING_KEYS <= training.keys():
        raise InputError(f"{path} is corrupt or from another version of pico-llm: its training state cannot be "
                         f"read. Resume from a good copy, {START_AGAIN}.")
    return payload


def describe_ids(vocab_ids: list[int] | None) -> str:
    return "all 50,257 GPT-2 ids" if vocab_ids is None else f"{len(vocab_ids):,} ids of the training text"


def vocabulary_difference(theirs: list[int] | None, ours: list[int] | None) -> str:
    if theirs is not None and ours is not None and len(theirs) == len(ours):
        what = f"{len(ours):,} ids of the training text there and here, but not the same ones"
    else:
        what = f"{describe_ids(theirs)} there, {describe_ids(ours)} here"
    return f"vocabulary: {what} (--vocab, --min_count and the training text decide it)"


def setting_differences(theirs: dict, ours: dict) -> list[str]:
    """Each setting of `ours` that `theirs` holds otherwise, with the two values and the flag that sets it."""
    differences = []
    for name, value in ours.items():
        if theirs.get(name) != value:
            flag = f" ({SETTING_FLAGS[name]})" if name in SETTING_FLAGS else ""
            differences.append(f"{name} {theirs.get(name)!r} there, {value!r} here{flag}")
    return differences


def check_resumable(payload: dict, path, family: str, config: dict, vocab_ids: list[int] | None,
                    settings: dict) -> None:
    """A checkpoint resumes only the model that wrote it (family, config, vocabulary, tokenizer), trained with the
    same settings; any difference is one InputError naming the setting and both values."""
    differences = (setting_differences({"family": payload["family"], "tokenizer": payload["tokenizer"]},
                                       {"family": family, "tokenizer": TOKENIZER_NAME})
                   or setting_differences(payload["config"], config))
    if payload["vocab_ids"] != vocab_ids:
        differences.append(vocabulary_difference(payload["vocab_ids"], vocab_ids))
    if differences:
        raise InputError(f"{path} is a checkpoint of another model: {'; '.join(differences)}. Resume it with the "
                         f"settings it trained with, {START_AGAIN}.")
    differences = setting_differences(payload["training"]["settings"], settings)
    if differences:
        raise InputError(f"{path} is a checkpoint of a run with other settings: {'; '.join(differences)}. Resume "
                         f"it with the settings it trained with, {START_AGAIN}.")


def open_resumable(path, family: str, config: dict, vocab_ids: list[int] | None, settings: dict) -> dict:
    """A training checkpoint, read and checked against the model and settings that are to go on from it."""
    payload = read_training_checkpoint(path)
    check_resumable(payload, path, family, config, vocab_ids, settings)
    return payload


def run_settings(corpus, run) -> dict:
    """What a resumed run must share with the run that wrote its checkpoint to follow the same trajectory (from its
    TrainingRun). The number of processes, micro-batches and the precision may differ: they change the arithmetic,
    not the run."""
    budget = run.budget
    return {"batch_size": run.batch_size, "seed": run.seed, "max_steps": budget.max_steps,
            "train_seconds": budget.train_seconds, "steps_per_epoch": budget.steps_per_epoch,
            "block_size": corpus.block_size, "packed": corpus.packed, **asdict(run.recipe)}


# ---------------------------------------------------------------- a run's state, kept and restored


class CountedBatches:
    """A batch stream that counts its draws, so that a resumed run can draw (and drop) as many again."""

    def __init__(self, batches):
        self.batches, self.drawn = batches, 0

    def __iter__(self):
        return self

    def __next__(self):
        batch = next(self.batches)
        self.drawn += 1
        return batch

    def skip(self, count: int) -> None:
        for _ in range(count):
            next(self)


def random_states(device: torch.device) -> dict:
    """The global random states: Python's, NumPy's, torch's, and the CUDA device's when training on one."""
    _, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    states = {"python": random.getstate(), "torch": torch.get_rng_state(),
              "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "position": int(position),
                        "has_gauss": int(has_gauss), "cached_gaussian": float(cached_gaussian)}}
    if device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state(device)
    return states


def restore_random_states(states: dict, device: torch.device) -> None:
    numpy = states["numpy"]
    random.setstate(states["python"])
    np.random.set_state(("MT19937", numpy["keys"].numpy().astype(np.uint32), numpy["position"], numpy["has_gauss"],
                         numpy["cached_gaussian"]))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and device.type == "cuda":
        torch.cuda.set_rng_state(states["cuda"], device)


class TrainingState:
    """What a run holds besides its model's weights, as train_model's loop updates it and a checkpoint keeps it:
    the optimizer, the gradient scaler, the schedule, the batches drawn, the history's rows, the time of the next
    evaluation, and the settings a resumed run must share."""

    def __init__(self, optimizer, scaler, schedule, batches: CountedBatches, settings: dict, device: torch.device,
                 next_eval_s: float | None):
        self.optimizer, self.scaler, self.schedule, self.batches = optimizer, scaler, schedule, batches
        self.settings, self.device, self.next_eval_s = settings, device, next_eval_s
        self.rows: list[tuple] = []
        self.resumed_from_step: int | None = None

    def state_dict(self) -> dict:
        """The checkpoint's "training" part."""
        return {"format": TRAINING_FORMAT, "optimizer": self.optimizer.state_dict(),
                "scaler": self.scaler.state_dict(), "schedule": self.schedule.state_dict(),
                "random_states": random_states(self.device), "batches_drawn": self.batches.drawn,
                "history": list(self.rows), "next_eval_s": self.next_eval_s, "settings": self.settings}

    def resume(self, payload: dict, path, model: torch.nn.Module) -> None:
        """Go on from a checkpoint (open_resumable's): the weights, the optimizer, the scaler, the schedule and the
        history, then the data sampler replayed and, last, the global random states (see the module's docstring)."""
        training = payload["training"]
        try:
            model.load_state_dict(payload["state_dict"])
            self.optimizer.load_state_dict(training["optimizer"])
        except (RuntimeError, ValueError, KeyError) as error:
            raise InputError(f"{path} is corrupt: its weights or optimizer state do not fit the model ({error}). "
                             f"Resume from a good copy, {START_AGAIN}.") from None
        if self.scaler.is_enabled() and training["scaler"]:  # a bf16 or fp32 run keeps no scale
            self.scaler.load_state_dict(training["scaler"])
        self.schedule.load_state_dict(training["schedule"])
        self.rows, self.next_eval_s = list(training["history"]), training["next_eval_s"]
        self.batches.skip(training["batches_drawn"])
        restore_random_states(training["random_states"], self.device)
        self.resumed_from_step = self.schedule.steps_done


# ---------------------------------------------------------------- stopping on a signal


class TrainingStopped(KeyboardInterrupt):
    """train_model stopped by SIGINT or SIGTERM after a whole step, its checkpoint written when it had a path.

    A KeyboardInterrupt, so that a notebook cell ends as an interrupted one does. The command line turns it into
    one line saying how to resume, and exit status 128 + the signal's number: 130 for SIGINT, 143 for SIGTERM.
    """

    def __init__(self, signal_number: int, step: int, planned_steps: int, estimated: bool, checkpoint: Path | None):
        self.signal_number, self.step, self.checkpoint = signal_number, step, checkpoint
        self.progress = f"step {step} of {'about ' if estimated else ''}{planned_steps}"
        then = (f"to go on, resume from its checkpoint: Checkpointing(resume_from={str(checkpoint)!r}) "
                f"(--resume {checkpoint})"
                if checkpoint is not None else "no checkpoint path was given, so it cannot be resumed")
        super().__init__(f"{signal.Signals(signal_number).name} stopped training at {self.progress}; {then}.")

    @property
    def exit_status(self) -> int:
        return 128 + self.signal_number


class StopRequests:
    """While a run trains, SIGINT and SIGTERM ask it to stop after the step under way.

    Alone, a process notes the first signal and puts back the handlers that were there before, so that a second
    signal (Ctrl-C pressed again) acts at once, as it always did. In a data-parallel run the signal comes twice,
    from the terminal or scheduler and again from torchrun, which forwards what it gets and kills what still runs
    30 s later: there every signal only asks for the stop. The handlers come back when training ends in any case.
    They can only be set in the main thread: elsewhere (training in a thread of its own) signals keep theirs.
    """

    def __init__(self):
        self.signal_number: int | None = None  # asked for in this process
        self.stopping: int | None = None  # agreed by every process: the run stops
        self.previous: dict = {}

    def __enter__(self) -> StopRequests:
        if threading.current_thread() is threading.main_thread():
            self.previous = {number: signal.signal(number, self.request) for number in STOP_SIGNALS}
        return self

    def __exit__(self, *exception) -> None:
        self.restore_handlers()

    def request(self, number: int, frame) -> None:
        self.signal_number = number
        if process_count() == 1:
            self.restore_handlers()

    def restore_handlers(self) -> None:
        for number, handler in self.previous.items():
            signal.signal(number, handler if handler is not None else signal.SIG_DFL)
        self.previous = {}

    def agreed(self, device: torch.device) -> int | None:
        """The signal that stops the run, or None to go on: in a data-parallel run any process's signal stops every
        process after the same step (one small all-reduce a step). A signal that comes during the all-reduce stays
        requested, for the next step's."""
        requested = self.signal_number or 0
        if process_count() > 1:
            flag = torch.tensor(requested, device=device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            requested = int(flag)
        self.stopping = requested or None
        return self.stopping
