"""Section 7 (continued). Exercises: the checks of the parts of the assignment a student writes.

Notebooks 01 to 04 ask the student to write the assignment's parts: counting a batch's targets
and a training loop (01), the k-gram window and the k-gram MLP's forward pass (02), RMSNorm,
the causal mask, causal attention, rotary positions and the KV cache (03), and nucleus
sampling, its filter and its draw (04). The cell after each exercise calls its check here. A
check runs the student's code beside the bundle's own on seeded inputs, among them the edge
cases the course notes got wrong, and

  - on success prints one line saying what it verified;
  - on failure raises ExerciseCheckFailed, whose one or two lines say what is wrong and where
    to look. Where the answer matches a known mistake (the starter's window, a mask that leaks
    the future, a wrong scale, a nucleus without its renormalisation...), the check names it.

Jupyter shows an ExerciseCheckFailed as its lines alone, without a traceback (IPython calls an
exception's `_render_traceback_`); an exercise left as its stub (`raise NotImplementedError`)
reads "not written yet", with the stub's hint. No check moves the notebook's random generators.
"""

from __future__ import annotations

import copy
import functools
import itertools
import math
import numbers
import random
import traceback
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from .corpus import ExampleCorpus
from .models import (KGramMLPSeqModel, LSTMSeqModel, RMSNorm, RotaryEmbedding, TransformerModel, attention_weights,
                     compute_next_token_loss, causal_mask, kgram_windows)
from .presets import TransformerConfig
from .sampling import nucleus_mask
from .training import STARTER_RECIPE, Budget, TrainingRun, targets_in, train_model

__all__ = ["ExerciseCheckFailed", "check_count_targets", "check_training_loop", "check_kgram_context",
           "check_kgram_mlp", "check_rms_norm", "check_causal_mask", "check_causal_attention", "check_rotary",
           "check_kv_cache", "check_nucleus_filter", "check_nucleus_sample"]

PACKAGE_DIR = Path(__file__).resolve().parent
TORCH_DIR = Path(torch.__file__).resolve().parent
TOY_VOCAB = 97  # the checks' models read ids 0..96: small enough to run in a blink
RED, RESET = "\x1b[31m", "\x1b[0m"


# ---------------------------------------------------------------- verdicts


class ExerciseCheckFailed(Exception):
    """What is wrong with an exercise's answer, and where to look, in one or two lines."""

    def __init__(self, exercise: str, problem: str, look_at: str | None = None):
        self.exercise, self.problem, self.look_at = exercise, problem, look_at
        super().__init__("\n".join(self.lines()))

    def lines(self) -> list[str]:
        return [f"✗ {self.exercise}: {self.problem}", *([f"  Look at: {self.look_at}"] if self.look_at else [])]

    def _render_traceback_(self) -> list[str]:
        """What Jupyter shows in place of a traceback: the verdict, its first line in red."""
        first, *rest = self.lines()
        return [f"{RED}{first}{RESET}", *rest]


def passed(exercise: str, verified: str) -> None:
    print(f"✓ {exercise}: {verified}")


def student_frame(error: BaseException) -> traceback.FrameSummary | None:
    """The innermost frame of the traceback that is the student's code, not torch's nor the bundle's."""
    frames = [frame for frame in traceback.extract_tb(error.__traceback__)
              if not Path(frame.filename).resolve().is_relative_to(PACKAGE_DIR)
              and not Path(frame.filename).resolve().is_relative_to(TORCH_DIR)]
    return frames[-1] if frames else None


def stub_name(error: NotImplementedError, exercise: str) -> str:
    """The function whose stub raised, such as `KVCache.__init__`; the exercise's name when unknown."""
    innermost = error.__traceback__
    while innermost is not None and innermost.tb_next is not None:
        innermost = innermost.tb_next
    return innermost.tb_frame.f_code.co_qualname if innermost is not None else exercise


def call_student(exercise: str, function, *args, look_at: str | None = None):
    """function(*args), with a stub or an error in it turned into a verdict rather than a traceback."""
    try:
        return function(*args)
    except ExerciseCheckFailed:
        raise
    except NotImplementedError as stub:
        hint = str(stub) or "replace the `raise NotImplementedError` line with your code"
        name = stub_name(stub, exercise)
        unwritten = "not written yet" if name == exercise else f"{name} is not written yet"
        raise ExerciseCheckFailed(exercise, f"{unwritten}: {hint}") from None
    except Exception as error:  # noqa: BLE001 (any error in the student's code becomes a verdict)
        frame = student_frame(error)
        where = f" at line {frame.lineno} of your code: `{(frame.line or '').strip()}`" if frame else ""
        message = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise ExerciseCheckFailed(exercise, f"your code raised {type(error).__name__}{where}: {message}",
                                  look_at) from None


def keeps_random_state(check):
    """A check that leaves the notebook's random generators (Python's, NumPy's and torch's) as it found them,
    whatever the student's code draws."""
    @functools.wraps(check)
    def checked(answer, *args, **kwargs):
        python_state, numpy_state = random.getstate(), np.random.get_state()
        with torch.random.fork_rng(devices=[]):
            try:
                return check(answer, *args, **kwargs)
            finally:
                random.setstate(python_state)
                np.random.set_state(numpy_state)
    return checked


# ---------------------------------------------------------------- comparing tensors


def as_tensor(exercise: str, value, expected: torch.Tensor, layout: str) -> torch.Tensor:
    """The student's answer, checked to be a tensor of the expected shape (`layout` names its axes)."""
    if not isinstance(value, torch.Tensor):
        raise ExerciseCheckFailed(exercise, f"returned a {type(value).__name__}, not a tensor",
                                  f"return a tensor of shape {layout}")
    if value.shape != expected.shape:
        swapped = value.dim() >= 2 and value.transpose(0, 1).shape == expected.shape
        raise ExerciseCheckFailed(exercise, f"wrong shape {tuple(value.shape)}: expected {tuple(expected.shape)}, "
                                  f"that is {layout}", "keep time first, as the bundle does: (seq_len, batch, ...)"
                                  if swapped and "seq_len, batch" in layout else f"the axes are {layout}")
    return value


def gap(got: torch.Tensor, expected: torch.Tensor) -> float:
    """The largest absolute difference (infinite where one has a NaN or an infinity the other has not)."""
    got, expected = got.detach().double(), expected.detach().double()
    same_non_finite = (got == expected) | (got.isnan() & expected.isnan())
    return float((got - expected).abs().masked_fill(same_non_finite, 0.0).nan_to_num(math.inf).max())


def name_the_mistake(exercise: str, got: torch.Tensor, expected: torch.Tensor, mistakes, otherwise: tuple[str, str],
                     tolerance: float = 1e-5) -> float:
    """Nothing if `got` matches `expected`; else the first known mistake (problem, look_at, what it gives) that
    `got` matches, or `otherwise`. Returns the gap when it matches."""
    difference = gap(got, expected)
    if difference <= tolerance:
        return difference
    for problem, look_at, wrong in mistakes:
        if wrong.shape == got.shape and gap(got, wrong) <= tolerance:
            raise ExerciseCheckFailed(exercise, problem, look_at)
    problem, look_at = otherwise
    if tolerance > 0:  # answers of whole numbers or booleans are either right or wrong
        problem = f"{problem} (largest difference {difference:.2g})"
    raise ExerciseCheckFailed(exercise, problem, look_at)


# ---------------------------------------------------------------- 01: counting targets, a training loop


def target_count_cases(seed: int = 0) -> list[tuple[str, torch.Tensor, torch.Tensor | None]]:
    """Batches as the loaders give them: padded lines of unequal length, lines of equal length, a packed batch."""
    generator = torch.Generator().manual_seed(seed)

    def padded(lengths: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        lengths = torch.tensor(lengths)
        mask = torch.arange(int(lengths.max())).unsqueeze(1) < lengths
        return torch.randint(1, TOY_VOCAB, mask.shape, generator=generator).masked_fill(~mask, 0), mask

    return [("padded lines of 6, 3, 1 and 5 tokens", *padded([6, 3, 1, 5])),
            ("lines of equal length", *padded([4, 4, 4])),
            ("a packed batch (mask None)", torch.randint(1, TOY_VOCAB, (7, 3), generator=generator), None)]


def count_mistakes(tokens: torch.Tensor, mask: torch.Tensor | None) -> list[tuple[int, str, str]]:
    """The counts a wrong count gives, each with what is wrong and where to look."""
    seq_len, batch = tokens.shape
    every_position = ("counts padding as targets", "a target is a real token (mask True) with a real token before it")
    first = ("counts each sequence's first token, which nothing predicts", "count mask[1:]: the first position has "
             "no token before it")
    mistakes = [(tokens.numel(), *every_position), ((seq_len - 1) * batch, *every_position)]
    if mask is None:
        return [(tokens.numel(), "counts every position, the first of each sequence too",
                 "with mask None (packed) every position but the first is a target: (seq_len - 1) * batch")]
    return [(int(mask.sum()), *first), *mistakes]


def verify_count(exercise: str, got, tokens: torch.Tensor, mask: torch.Tensor | None, label: str) -> int:
    """A count the student gave for one batch, held against targets_in's, its mistake named."""
    expected = targets_in(tokens, mask)
    if isinstance(got, torch.Tensor) and got.numel() == 1:
        got = got.item()
    if not isinstance(got, numbers.Real) or got != int(got):
        raise ExerciseCheckFailed(exercise, f"gave {got!r} for {label}, not a whole number",
                                  "return an int (int(tensor) turns a one-element tensor into one)")
    if got == expected:
        return expected
    for wrong, problem, look_at in count_mistakes(tokens, mask):
        if got == wrong:
            raise ExerciseCheckFailed(exercise, f"{problem}: {int(got)} instead of {expected} for {label}", look_at)
    raise ExerciseCheckFailed(exercise, f"{int(got)} targets for {label}, expected {expected}",
                              "count the real tokens (mask True) of positions 1 onward: mask[1:].sum()")


@keeps_random_state
def check_count_targets(count_targets) -> None:
    """Check count_targets(tokens, mask) against h.targets_in, on padded, unpadded and packed batches."""
    exercise = "count_targets"
    total = 0
    for label, tokens, mask in target_count_cases():
        got = call_student(exercise, count_targets, tokens, mask,
                           look_at="mask is (seq_len, batch), True at real tokens; None for a packed batch")
        total += verify_count(exercise, got, tokens, mask, label)
    passed(exercise, f"matches h.targets_in on padded lines, lines of equal length and a packed batch "
                     f"({total} targets in all: padding and each sequence's first token left out)")


def padded_toy_corpus(seed: int = 0) -> ExampleCorpus:
    """Twelve random 'lines' of 3 to 12 tokens: batches of them are padded, as the starter's are."""
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(3, 13, (12,), generator=generator).tolist()
    lines = [torch.randint(1, TOY_VOCAB, (length,), generator=generator).tolist() for length in lengths]
    return ExampleCorpus(train_base=[], train_own=lines, test_base=[], test_own=[], base_weight=0.0, block_size=12)


def history_table(exercise: str, history, steps: int) -> pd.DataFrame:
    try:
        table = pd.DataFrame(history)
    except (ValueError, TypeError):
        table = pd.DataFrame()
    if not {"loss", "tokens"} <= set(table.columns) or len(table) != steps:
        raise ExerciseCheckFailed(exercise, f"returned {type(history).__name__} without one row per step and "
                                  "columns loss and tokens", f"return a DataFrame of {steps} rows, one per step, "
                                  "with columns step, loss and tokens")
    return table.reset_index(drop=True)


@keeps_random_state
def check_training_loop(train_steps, steps: int = 4, batch_size: int = 4, seed: int = 0) -> None:
    """Check train_steps(model, batches, optimizer, steps) against h.train_model: the same losses, step by step,
    from the same weights and batches with the starter's Adam, and the targets of each batch counted as
    h.targets_in counts them."""
    exercise = "train_steps"
    corpus = padded_toy_corpus(seed)
    torch.manual_seed(seed)
    model = LSTMSeqModel(TOY_VOCAB, embed_size=16, hidden_size=16)
    initial, reference_model = copy.deepcopy(model), copy.deepcopy(model)
    random.seed(seed)  # the starter's loader draws its lines with Python's random
    batches = list(itertools.islice(corpus.train_batches(batch_size, seed), steps))
    optimizer = torch.optim.Adam(model.parameters(), lr=STARTER_RECIPE.learning_rate, betas=STARTER_RECIPE.betas)
    history = call_student(exercise, train_steps, model, iter(batches), optimizer, steps,
                           look_at="each batch is (tokens, mask); the loss is model.next_token_loss(tokens, mask)")
    table = history_table(exercise, history, steps)
    if all(torch.equal(before, after) for before, after in zip(initial.parameters(), model.parameters())):
        raise ExerciseCheckFailed(exercise, "the model's weights never changed",
                                  "after loss.backward(), call optimizer.step(), once per batch")
    random.seed(seed)
    reference = train_model(reference_model, corpus, TrainingRun(budget=Budget(max_steps=steps), batch_size=batch_size,
                                                                 seed=seed, recipe=STARTER_RECIPE),
                            progress=False, name="reference")
    for step, (tokens, mask) in enumerate(batches, start=1):
        verify_count(exercise, table["tokens"][step - 1], tokens, mask, f"step {step}'s batch")
    verify_losses(exercise, table["loss"].astype(float).tolist(), reference["loss"].tolist(), initial, batches[0])
    passed(exercise, f"{steps} steps on padded batches give h.train_model's losses ({reference['loss'].iloc[0]:.3f} "
                     f"-> {reference['loss'].iloc[-1]:.3f}) and its target counts ({int(reference['tokens'].sum())} "
                     "targets, padding and first tokens left out)")


def verify_losses(exercise: str, losses: list[float], expected: list[float], initial, first_batch) -> None:
    """The student's per-step losses against the reference run's, the first step's mistake named."""
    tokens, mask = first_batch
    if abs(losses[0] - expected[0]) > 1e-4:
        with torch.no_grad():
            with_padding = float(compute_next_token_loss(initial(tokens), tokens))
        if abs(losses[0] - with_padding) <= 1e-4:
            raise ExerciseCheckFailed(exercise, f"step 1's loss {losses[0]:.4f} averages over the padding too "
                                      f"({expected[0]:.4f} without it)", "pass the mask: "
                                      "model.next_token_loss(tokens, mask)")
        raise ExerciseCheckFailed(exercise, f"step 1's loss is {losses[0]:.4f}, the bundle's {expected[0]:.4f}",
                                  "record the mean next-token loss of the batch before the update: "
                                  "model.next_token_loss(tokens, mask).item()")
    for step, (got, want) in enumerate(zip(losses, expected), start=1):
        if abs(got - want) > 1e-4:
            raise ExerciseCheckFailed(exercise, f"step {step}'s loss is {got:.4f}, the bundle's {want:.4f}: the first "
                                      f"{step - 1} agree, so an update is off", "zero the gradients before each "
                                      "backward pass (optimizer.zero_grad()), then backward, then one optimizer.step()")


# ---------------------------------------------------------------- 02: the k-gram window, the k-gram MLP


@keeps_random_state
def check_kgram_context(kgram_context) -> None:
    """Check kgram_context(tokens, k) against h.kgram_windows: the window t-k+1..t, oldest first, zero-padded."""
    exercise = "kgram_context"
    tokens = torch.randint(1, 1000, (7, 3), generator=torch.Generator().manual_seed(0))
    for k in (3, 1, 9):
        expected = kgram_windows(tokens, k)
        got = as_tensor(exercise, call_student(exercise, kgram_context, tokens, k,
                                               look_at="tokens is (seq_len, batch); return (seq_len, batch, k)"),
                        expected, "(seq_len, batch, k)")
        t, b = (got != expected).nonzero()[0, :2].tolist() if (got != expected).any() else (0, 0)
        name_the_mistake(exercise, got, expected, [
            ("this is the starter's window t-k..t-1, which leaves out token t", "the logits at t predict token t+1, "
             "so the window ends at t: tokens t-k+1..t", kgram_windows(tokens, k, include_current=False)),
            ("the window is newest first", "put the oldest token first: t-k+1, ..., t", expected.flip(-1))],
            (f"with k = {k}, position t = {t} of batch item {b} has window {got[t, b].tolist()}, expected "
             f"{expected[t, b].tolist()}", "pad k-1 zeros before position 0 (F.pad), then take the k tokens "
             "ending at each t (unfold)"), tolerance=0)
    passed(exercise, "windows t-k+1..t, oldest first, zero-padded before the start, for k = 3, 1 and 9 "
                     "(longer than the 7 tokens)")


def copy_student_layers(exercise: str, student, bundle: KGramMLPSeqModel) -> None:
    """Give the bundle's embedding-design model the student's weights, layer by layer."""
    try:
        for ours, theirs in [(bundle.embedding, student.embedding), (bundle.mix, student.mix),
                             (bundle.mlp, student.mlp), (bundle.lm_head.linear, student.head)]:
            ours.load_state_dict(theirs.state_dict())
    except (AttributeError, RuntimeError):
        raise ExerciseCheckFailed(exercise, "its layers are not the ones __init__ builds",
                                  "keep __init__ as given (embedding, mix, mlp, head): the check copies them into "
                                  "h.KGramMLPSeqModel and compares the logits") from None


@keeps_random_state
def check_kgram_mlp(KGramMLP) -> None:  # noqa: N803 (the student's class)
    """Check KGramMLP(vocab_size, k, embed_size, num_inner_layers)'s forward against h.KGramMLPSeqModel's
    embedding design given the same weights."""
    exercise = "KGramMLP"
    vocab, k, width = TOY_VOCAB, 3, 8
    with torch.no_grad():
        torch.manual_seed(0)
        student = call_student(exercise, KGramMLP, vocab, k, width, 1)
        bundle = KGramMLPSeqModel(vocab, k=k, embed_size=width, num_inner_layers=1, variant="embedding")
        copy_student_layers(exercise, student, bundle)
        starter = KGramMLPSeqModel(vocab, k=k, embed_size=width, num_inner_layers=1, variant="embedding",
                                   include_current=False)
        starter.load_state_dict(bundle.state_dict())
        tokens = torch.randint(0, vocab, (9, 2))
        expected = bundle(tokens)
        got = as_tensor(exercise, call_student(exercise, student, tokens, look_at="return logits (seq_len, batch, "
                                               "vocab_size): embed the windows, flatten, mix, mlp, head"),
                        expected, "(seq_len, batch, vocab_size)")
        embedded = bundle.embedding(kgram_windows(tokens, k))  # (seq_len, batch, k, d)
        difference = name_the_mistake(exercise, got, expected, [
            ("the logits at t read the starter's window t-k..t-1, without token t", "the window must end at t: "
             "kgram_context(tokens, self.k)", starter(tokens)),
            ("the hidden layers (self.mlp) are skipped", "mix -> mlp -> head",
             bundle.lm_head(bundle.mix(embedded.flatten(-2)))),
            ("the k embeddings are interleaved feature by feature", "concatenate them whole, oldest first: flatten "
             "the last two axes of (seq_len, batch, k, d)",
             bundle.lm_head(bundle.mlp(bundle.mix(embedded.transpose(-1, -2).flatten(-2)))))],
            leak_or_mismatch(student, tokens, got, "KGramMLP"))
    passed(exercise, f"gives h.KGramMLPSeqModel's logits with your layers' weights (window t-k+1..t, k = {k}; "
                     f"largest difference {difference:.1g})")


def leak_or_mismatch(model, tokens: torch.Tensor, logits: torch.Tensor, name: str) -> tuple[str, str]:
    """What to say when a model's logits differ: that the future leaks, if changing the last tokens moves the
    logits before them; else that they differ."""
    changed = tokens.clone()
    changed[-3:] = (changed[-3:] + 1) % TOY_VOCAB
    if gap(model(changed)[:-3], logits[:-3]) > 1e-6:
        return ("the logits at t change when a later token changes: the future leaks into the window",
                "a prediction at t may read tokens t-k+1..t only")
    return ("the logits differ from h.KGramMLPSeqModel's", "embed the window (seq_len, batch, k, d), flatten the "
            f"last two axes to k*d, then mix -> mlp -> head ({name}.__init__ builds them)")


# ---------------------------------------------------------------- 03: RMSNorm, the mask, attention, RoPE, the cache


@keeps_random_state
def check_rms_norm(RMSNormClass) -> None:  # noqa: N803 (the student's class)
    """Check the student's RMSNorm(dim) against h.RMSNorm, with a learned weight, on inputs of very different
    scales."""
    exercise = "RMSNorm"
    dim, scales = 16, torch.tensor([1e-3, 1.0, 50.0])
    with torch.no_grad():
        torch.manual_seed(0)
        student = call_student(exercise, RMSNormClass, dim)
        eps = getattr(student, "eps", 1e-5)
        if not isinstance(getattr(student, "weight", None), torch.Tensor) or student.weight.shape != (dim,):
            raise ExerciseCheckFailed(exercise, "has no learned weight of shape (dim,)",
                                      "keep __init__'s self.weight = nn.Parameter(torch.ones(dim))")
        weight = 1.0 + 0.5 * torch.randn(dim)
        student.weight.copy_(weight)
        reference = RMSNorm(dim, eps)
        reference.weight.copy_(weight)
        x = torch.randn(3, 4, dim) * scales.view(3, 1, 1)
        expected = reference(x)
        got = as_tensor(exercise, call_student(exercise, student, x, look_at="normalise over the last axis, "
                                               "keeping it for broadcasting (keepdim=True)"), expected, "as x's")
        mean_square = x.pow(2).mean(-1, keepdim=True)
        difference = name_the_mistake(exercise, got, expected, [
            ("subtracts the mean: that is LayerNorm", "RMSNorm only divides by sqrt(mean(x²) + eps), then scales",
             F.layer_norm(x, (dim,), eps=eps) * weight),
            (f"too small by sqrt(dim) = {math.sqrt(dim):g}: it divides by the root of the sum of squares",
             "take the mean of x² over the last axis, not the sum",
             x * torch.rsqrt(x.pow(2).sum(-1, keepdim=True) + eps) * weight),
            ("eps is added outside the square root, which changes small inputs (scale 1e-3 here)",
             "x / sqrt(mean(x²) + eps)", x / (mean_square.sqrt() + eps) * weight),
            ("the learned weight is not applied", "multiply by self.weight at the end",
             x * torch.rsqrt(mean_square + eps)),
            ("normalises over the first axis instead of the features",
             "mean over the last axis: mean(-1, keepdim=True)",
             x * torch.rsqrt(x.pow(2).mean(0, keepdim=True) + eps) * weight)],
            ("differs from h.RMSNorm", "x / sqrt(mean(x²) + eps) * weight, the mean over the last axis"),
            tolerance=1e-5 * float(got.abs().max()))
    passed(exercise, f"matches h.RMSNorm with a learned weight on inputs of scale 0.001, 1 and 50 (largest "
                     f"difference {difference:.1g})")


def mask_cases() -> list[tuple[int, int, str]]:
    return [(5, 5, "5 positions"), (1, 5, "1 new query after 4 cached keys"), (3, 7, "3 new queries after 4 cached")]


@keeps_random_state
def check_causal_mask(causal_mask_fn) -> None:
    """Check causal_mask(q_len, kv_len) against h.causal_mask: True where a query may attend to a key."""
    exercise = "causal_mask"
    for q_len, kv_len, label in mask_cases():
        expected = causal_mask(q_len, kv_len, "cpu")
        got = as_tensor(exercise, call_student(exercise, causal_mask_fn, q_len, kv_len), expected, "(q_len, kv_len)")
        if got.dtype != torch.bool:
            raise ExerciseCheckFailed(exercise, f"returns {got.dtype} values, not booleans",
                                      "return a torch.bool tensor: True where query i may attend to key j")
        ones = torch.ones(q_len, kv_len, dtype=torch.bool)
        leaks = bool((got & ~expected).any())
        i, j = (got != expected).nonzero()[0].tolist() if (got != expected).any() else (0, 0)
        name_the_mistake(exercise, got, expected, [
            ("True and False are swapped", "True must mean 'may attend': key j at or before the query's position",
             ~expected),
            ("a position may not attend to itself", "keep the diagonal: key j <= the query's position, not <",
             ones.tril(kv_len - q_len - 1)),
            (f"with {label} the queries are taken as positions 0..{q_len - 1}",
             "the queries are the last q_len of kv_len positions: query i sits at kv_len - q_len + i",
             ones.tril(0))],
            (f"the future leaks ({label}): query {i} may see key {j}, a later position" if leaks else
             f"query {i} may not see key {j} ({label}), which is not in its future",
             "query i sits at position kv_len - q_len + i and sees keys 0 .. that position: tril(diagonal=kv_len - "
             "q_len)"), tolerance=0)
    passed(exercise, "the lower triangle, diagonal included, for 5 positions, and for 1 and 3 new queries after "
                     "cached keys (the queries are the last positions)")


def attention_variants(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, list]:
    """softmax(q k^T / sqrt(d)) v with the future masked, and what each known mistake gives instead."""
    d, q_len, kv_len = q.shape[-1], q.shape[-2], k.shape[-2]
    mask = causal_mask(q_len, kv_len, q.device)
    scores = q @ k.transpose(-2, -1)

    def masked(scale: float, dim: int = -1) -> torch.Tensor:
        return (scores / scale).masked_fill(~mask, float("-inf")).softmax(dim=dim) @ v

    look = f"divide q·kᵀ by sqrt(head_dim) = {math.sqrt(d):.3g}"
    mistakes = [
        ("the future leaks: position t attends to later positions", "fill the scores above the diagonal with -inf "
         "before the softmax (causal_mask)", (scores / math.sqrt(d)).softmax(-1) @ v),
        (f"wrong scale: the scores are divided by head_dim = {d}", look, masked(d)),
        ("wrong scale: the scores are not scaled", look, masked(1.0)),
        ("the weights are masked after the softmax, so they no longer sum to 1", "fill the masked scores with -inf "
         "before the softmax", (scores / math.sqrt(d)).softmax(-1) * mask @ v),
        ("masked scores set to 0 still get weight exp(0)", "fill them with -inf, not 0",
         (scores / math.sqrt(d)).masked_fill(~mask, 0.0).softmax(-1) @ v),
        ("the softmax runs over the queries", "normalise each query's scores over the keys: softmax(dim=-1)",
         masked(math.sqrt(d), dim=-2)),
        ("with fewer queries than keys the mask takes the queries as the first positions", "the queries are the "
         "last q_len positions: causal_mask(q_len, kv_len)",
         (scores / math.sqrt(d)).masked_fill(~mask.new_ones(mask.shape).tril(), float("-inf")).softmax(-1) @ v)]
    return attention_weights(q, k, mask) @ v, mistakes


@keeps_random_state
def check_causal_attention(causal_attention) -> None:
    """Check causal_attention(q, k, v) against softmax(q k^T / sqrt(d)) v with the future masked (the bundle's
    h.attention_weights and h.causal_mask), for a whole sequence and for new queries after cached keys."""
    exercise = "causal_attention"
    generator = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 6, 8, generator=generator) for _ in range(3))
    largest = 0.0
    for queries, label in [(q, "6 positions"), (q[..., 4:, :], "2 new queries after 4 cached keys")]:
        expected, mistakes = attention_variants(queries, k, v)
        got = as_tensor(exercise, call_student(exercise, causal_attention, queries, k, v, look_at="q (batch, heads, "
                                               "q_len, head_dim), k and v (batch, heads, kv_len, head_dim)"),
                        expected, "(batch, heads, q_len, head_dim)")
        mistakes = [(f"{problem} ({label})", look_at, wrong) for problem, look_at, wrong in mistakes]
        largest = max(largest, name_the_mistake(exercise, got, expected, mistakes, (
            f"differs from softmax(q·kᵀ/√d)·v with the future masked ({label})",
            "scores q·kᵀ / sqrt(head_dim), -inf where causal_mask is False, softmax over the keys, times v")))
    passed(exercise, f"softmax(q·kᵀ/√{q.shape[-1]})·v with the future masked, for 6 positions and for 2 new "
                     f"queries after 4 cached keys (largest difference {largest:.1g})")


def rotary_variants(x: torch.Tensor, start: int, base: float) -> tuple[torch.Tensor, list]:
    """h.RotaryEmbedding's rotation of x at positions start.., and what each known mistake gives instead."""
    head_dim, seq_len = x.shape[-1], x.shape[-2]
    rotary = RotaryEmbedding(head_dim, start + seq_len, base)
    positions = torch.arange(start, start + seq_len, dtype=torch.float32)
    angles = torch.outer(positions, base ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    cos, sin = angles.cos(), angles.sin()
    even, odd = x[..., 0::2], x[..., 1::2]
    neighbours = torch.stack([even * cos - odd * sin, even * sin + odd * cos], dim=-1).flatten(-2)
    first, second = x.chunk(2, dim=-1)
    slow = torch.outer(positions, base ** (-torch.arange(head_dim // 2, dtype=torch.float32) / head_dim)).repeat(1, 2)
    mistakes = [
        ("rotates the wrong way", "x·cos + rotate_half(x)·sin, with rotate_half(x) = (-x2, x1)",
         x * rotary.cos[start:start + seq_len] - torch.cat([-second, first], -1) * rotary.sin[start:start + seq_len]),
        ("pairs neighbouring features (0, 1), (2, 3), ...", "this bundle pairs feature i with feature i + head_dim/2: "
         "split x into halves", neighbours),
        ("wrong frequencies", "pair i turns at base^(-2i/head_dim): torch.arange(0, head_dim, 2) / head_dim",
         x * slow.cos() + torch.cat([-second, first], -1) * slow.sin())]
    if start:
        mistakes.insert(0, (f"the positions start at 0, not at start = {start}", "the tokens sit at start, start+1, "
                            "...: with a KV cache they come after the cached ones", rotary(x, 0)))
    return rotary(x, start), mistakes


@keeps_random_state
def check_rotary(apply_rotary, base: float = 10_000.0) -> None:
    """Check apply_rotary(x, start) against h.RotaryEmbedding, at positions from 0 and from 7."""
    exercise = "apply_rotary"
    x = torch.randn(2, 3, 5, 8, generator=torch.Generator().manual_seed(0))
    largest = 0.0
    for start in (0, 7):
        expected, mistakes = rotary_variants(x, start, base)
        got = as_tensor(exercise, call_student(exercise, apply_rotary, x, start, look_at="x is (batch, heads, seq, "
                                               "head_dim); the angles are (seq, head_dim)"),
                        expected, "(batch, heads, seq, head_dim)")
        lengths = gap(got.norm(dim=-1), x.norm(dim=-1))
        largest = max(largest, name_the_mistake(exercise, got, expected, mistakes, (
            "changes the vectors' lengths: a rotation keeps them" if lengths > 1e-4 else
            f"differs from h.RotaryEmbedding at positions {start}..{start + x.shape[-2] - 1}",
            "x·cos + rotate_half(x)·sin, angles position × base^(-2i/head_dim), both halves alike")))
    passed(exercise, f"matches h.RotaryEmbedding at positions 0..4 and 7..11: halves paired, pair i turning at "
                     f"base^(-2i/d), lengths kept (largest difference {largest:.1g})")


def toy_transformer(n_blocks: int) -> TransformerModel:
    """A tiny Llama-style model: RoPE, grouped-query attention (4 query heads, 2 key/value heads), SwiGLU."""
    torch.manual_seed(0)
    config = TransformerConfig(vocab_size=TOY_VOCAB, d_model=32, n_heads=4, n_kv_heads=2, n_blocks=n_blocks, d_ff=64,
                               positions="rope", ffn="swiglu", tie_weights=False, max_seq_len=16)
    return TransformerModel(config).eval()


def cached_logits(exercise: str, KVCache, model: TransformerModel, tokens: torch.Tensor, prompt: int):  # noqa: N803
    """The logits of a prompt through an empty cache, then of each later token alone, each call's in a list."""
    look_at = "update gets (batch, kv_heads, new, head_dim) keys and values; it returns every position's so far"
    cache = call_student(exercise, KVCache, model.settings, tokens.shape[1], "cpu", torch.float32)
    if not isinstance(getattr(cache, "length", None), int):
        raise ExerciseCheckFailed(exercise, "the cache has no whole-number `length`", "set self.length = 0 in "
                                  "__init__: the model reads it for the positions and adds the new tokens to it")
    calls = [tokens[:prompt]] + [tokens[t:t + 1] for t in range(prompt, len(tokens))]
    logits, seen = [], 0
    for call in calls:
        logits.append(call_student(exercise, model, call, cache, look_at=look_at))
        seen += len(call)
        if cache.length != seen:
            raise ExerciseCheckFailed(exercise, f"cache.length is {cache.length} after {seen} tokens",
                                      "leave `length` to the model: it adds the new tokens after the last block "
                                      "(update must not)")
    return logits


def first_drift(logits: list[torch.Tensor], dense: torch.Tensor) -> int | None:
    """The first call (0: the prompt) whose cached logits differ from dense attention's, or None."""
    ends = np.cumsum([len(step) for step in logits])
    return next((call for call, (step, end) in enumerate(zip(logits, ends))
                 if gap(step, dense[end - len(step):end]) > 1e-4), None)


@keeps_random_state
def check_kv_cache(KVCache, prompt: int = 4) -> None:  # noqa: N803 (the student's class)
    """Check a KVCache(config, batch_size, device, dtype) class inside h.TransformerModel's cache path: a prompt
    through the empty cache, then one token at a time, must give the logits of dense attention over the whole
    sequence, step by step."""
    exercise = "KVCache"
    with torch.no_grad():
        model = toy_transformer(n_blocks=2)
        tokens = torch.randint(0, TOY_VOCAB, (10, 2))
        dense = model(tokens)
        logits = cached_logits(exercise, KVCache, model, tokens, prompt)
        drift = first_drift(logits, dense)
        if drift is not None:
            raise ExerciseCheckFailed(exercise, *drift_verdict(KVCache, tokens, prompt, drift))
        largest = gap(torch.cat(logits), dense)
    passed(exercise, f"a {prompt}-token prompt and {len(tokens) - prompt} single-token steps through your cache give "
                     f"dense attention's logits, step by step (2 blocks, batch 2, RoPE, grouped-query heads; largest "
                     f"difference {largest:.1g})")


def drift_verdict(KVCache, tokens: torch.Tensor, prompt: int, drift: int) -> tuple[str, str]:  # noqa: N803
    """What is wrong when the cached logits drift from dense attention: the blocks mixed up, if one block alone
    is right; else the prompt, or the new tokens not seeing the cached ones."""
    one_block = toy_transformer(n_blocks=1)
    if first_drift(cached_logits("KVCache", KVCache, one_block, tokens, prompt), one_block(tokens)) is None:
        return ("right with one block, wrong with two: the blocks' keys and values are mixed up",
                "keep each block's keys and values apart, indexed by `block`")
    if drift == 0:
        return (f"a {prompt}-token prompt through the empty cache already differs from dense attention",
                "with nothing cached yet, update stores the keys and values it is given and returns them")
    return (f"step {drift} (position {prompt + drift - 1}) drifts from dense attention: the new token does not see "
            "the cached positions", "update must return all keys and values so far, the cached ones then the new "
            "ones, along the position axis (-2)")


# ---------------------------------------------------------------- 04: nucleus sampling


def renormalised_nucleus(probs: torch.Tensor, p: float) -> torch.Tensor:
    """The bundle's answer: the probabilities of the top-p nucleus (h.nucleus_mask), renormalised, others 0."""
    kept = probs * nucleus_mask(probs, p)
    return kept / kept.sum(dim=-1, keepdim=True)


def nucleus_cases(seed: int = 0) -> list[tuple[torch.Tensor, float, str]]:
    """Exact binary fractions (so that float sums are exact), with the edge cases the notes' sampler got wrong,
    then random rows."""
    small = torch.tensor([0.0625, 0.5, 0.125, 0.25, 0.0625])
    rows = (2.0 * torch.randn(4, 50, generator=torch.Generator().manual_seed(seed))).softmax(-1)
    return [(small, 0.3, "p = 0.3, below the top token's 0.5"),
            (small, 0.6, "p = 0.6, which the second-ranked token (0.25) crosses"),
            (small, 1.0, "p = 1.0"),
            (rows, 0.9, "4 random rows of 50 tokens at p = 0.9")]


def nucleus_verdict(got: torch.Tensor, probs: torch.Tensor, expected: torch.Tensor, p: float,
                    label: str) -> tuple[str, str] | None:
    """What is wrong with a filtered distribution, or None if it is right."""
    if gap(got, expected) <= 1e-5:
        return None
    kept, should = got > 0, expected > 0
    if got.isnan().any() or not kept.any(dim=-1).all():
        return (f"keeps no token at {label}", "always keep the most probable token: the nucleus is the smallest set "
                "whose mass reaches p, never empty")
    if torch.equal(kept, probs.cumsum(dim=-1) - probs < p) and not torch.equal(kept, should):
        return (f"keeps tokens in id order, not by probability ({label})", "sort the probabilities in descending "
                "order before the running total (cumsum)")
    if gap(got, expected.gather(-1, probs.argsort(dim=-1, descending=True, stable=True))) <= 1e-5:
        return ("the probabilities come back in sorted order", "put each back at its token's id (scatter with the "
                "sort's indices)")
    if torch.equal(kept, should):
        totals = got.sum(-1)
        if gap(totals, torch.ones_like(totals)) > 1e-4:
            return (f"the kept probabilities sum to {totals.flatten()[0]:.3g}, not 1 ({label})", "renormalise: "
                    "divide the kept probabilities by their sum")
        return (f"keeps the right tokens, but not in their original proportions ({label})", "divide the kept "
                "probabilities by their sum, and change nothing else")
    if (kept <= should).all():
        missing = int((should & ~kept).sum())
        if p == 1.0:
            return (f"p = 1.0 must keep every token; yours drops {missing}", "compare the mass *before* each token "
                    "with p (cumsum - probs < p): at p = 1.0 nothing is cut")
        return (f"leaves out the token that crosses p ({label})", "the nucleus is the smallest set whose mass "
                "reaches p: keep each token whose predecessors hold less than p")
    if (kept >= should).all():
        extra = int((kept & ~should).sum())
        return (f"keeps {extra} token{'s' * (extra > 1)} beyond the nucleus ({label})", "stop after the token "
                "whose running total first reaches p")
    return (f"keeps other tokens than the nucleus ({label})", "sort the probabilities in descending order before "
            "the running total (cumsum), and keep the top of that order")


@keeps_random_state
def check_nucleus_filter(nucleus_filter) -> None:
    """Check nucleus_filter(probs, p) against h.nucleus_mask, renormalised: the edge cases first."""
    exercise = "nucleus_filter"
    for probs, p, label in nucleus_cases():
        expected = renormalised_nucleus(probs, p)
        got = as_tensor(exercise, call_student(exercise, nucleus_filter, probs.clone(), p,
                                               look_at="probs is (..., vocab); return (..., vocab) probabilities"),
                        expected, "as probs': (..., vocab)")
        verdict = nucleus_verdict(got, probs, expected, p, label)
        if verdict:
            raise ExerciseCheckFailed(exercise, *verdict)
    passed(exercise, "the smallest set of most probable tokens that reaches p, renormalised, in id order: p = 1.0 "
                     "keeps all 5 tokens, p = 0.3 only the top token (0.5), p = 0.6 the token that crosses it; and 4 "
                     "random rows at p = 0.9")


def draws(exercise: str, nucleus_sample, logits: torch.Tensor, p: float, count: int, seed: int = 0) -> torch.Tensor:
    """`count` draws of the student's sampler from one generator (and torch's global seed, for a sampler that
    ignores the generator)."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    drawn = []
    for _ in range(count):
        token = call_student(exercise, nucleus_sample, logits, p, generator, look_at="logits is 1-D (vocab,); "
                             "return one token id")
        try:
            drawn.append(int(token))
        except (TypeError, ValueError, RuntimeError):
            raise ExerciseCheckFailed(exercise, f"returned {type(token).__name__} {token!r}, not one token id",
                                      "return an int (int(tensor) turns a one-element tensor into one)") from None
    return torch.tensor(drawn)


def sampling_verdict(drawn: torch.Tensor, logits: torch.Tensor, p: float) -> tuple[str, str] | None:
    """What is wrong with draws at p, or None if they keep to the renormalised nucleus in proportion."""
    probs = logits.softmax(-1)
    expected = renormalised_nucleus(probs, p)
    inside = expected > 0
    top = int(probs.argmax())
    if (drawn == top).all() and inside.sum() > 1:
        return (f"always returns the most probable token at p = {p}: that is the notes' placeholder (greedy), not "
                "sampling", "draw from the renormalised nucleus, e.g. torch.multinomial(kept, 1, generator=generator)")
    outside = drawn[~inside[drawn]]
    if len(outside):
        ranked = probs.argsort(descending=True, stable=True)
        if inside[ranked[drawn]].all():
            return ("returns a token's rank in the sorted order, not its id", "map the choice back through the "
                    "sort's indices: sorted_ids[choice]")
        if inside.sum() == 1:
            return (f"drew token {int(outside[0])} at p = {p:.2f}, below the top token's probability "
                    f"{probs[top]:.2f}: only that token may be drawn", "always keep the first token of the sorted "
                    "order: the token that crosses p is in the nucleus")
        return (f"drew token {int(outside[0])}, outside the top-p nucleus ({int(inside.sum())} of {len(probs)} "
                f"tokens at p = {p})", "draw among the kept tokens only")
    frequencies = torch.bincount(drawn, minlength=len(probs)).double() / len(drawn)
    worst = int((frequencies - expected).abs().argmax())
    if abs(frequencies[worst] - expected[worst]) > 0.04:
        return (f"token {worst} was drawn {frequencies[worst]:.0%} of the time at p = {p}, expected "
                f"{expected[worst]:.0%}", "draw in proportion to the kept probabilities, renormalised")
    return None


@keeps_random_state
def check_nucleus_sample(nucleus_sample) -> None:
    """Check nucleus_sample(logits, p, generator) by its draws: inside the bundle's nucleus, in the renormalised
    proportions; p = 1.0 reaches the whole distribution; a p below the top token's probability gives that token."""
    exercise = "nucleus_sample"
    logits = 1.5 * torch.randn(20, generator=torch.Generator().manual_seed(1))
    probs = logits.softmax(-1)
    nucleus = int(nucleus_mask(probs, 0.8).sum())
    drawn = {p: draws(exercise, nucleus_sample, logits, p, count)
             for p, count in [(0.8, 2000), (1.0, 2000), (float(probs.max()) / 2, 200)]}
    for p, tokens in drawn.items():
        if p == 1.0 and nucleus_mask(probs, 0.8)[tokens].all():
            raise ExerciseCheckFailed(exercise, "at p = 1.0 it never draws outside the p = 0.8 nucleus",
                                      "p = 1.0 keeps the whole distribution: nothing is cut")
        verdict = sampling_verdict(tokens, logits, p)
        if verdict:
            raise ExerciseCheckFailed(exercise, *verdict)
    reached = int(drawn[1.0].unique().numel())
    passed(exercise, f"2,000 draws at p = 0.8 stay in its {nucleus}-token nucleus, in the renormalised proportions "
                     f"(within 4 points); p = 1.0 reaches {reached} of 20 tokens; a p below the top token's "
                     f"{probs.max():.2f} always gives it")
