"""The exercises' checks: each passes the notebooks' reference solutions, fails every planted mistake it names with
the words that name it, turns a stub into "not written yet" with its hint, and shows in Jupyter as its one or two
lines, never as a traceback."""

import math

import jupytext
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import picollm_helpers as h
from conftest import ROOT

EXERCISE_NOTEBOOKS = ["01_sanity_check", "02_kgram_design_comparison", "03_transformer_build_up", "04_nucleus_sampling"]


def solutions(stem: str) -> dict:
    """The names a notebook's exercise cells define, with their reference solutions, run as the notebook runs them."""
    names = {"h": h, "torch": torch, "nn": nn, "F": F, "math": math, "pd": pd}
    for cell in jupytext.read(ROOT / "notebooks" / f"{stem}.py").cells:
        if cell.cell_type == "code" and "### BEGIN SOLUTION" in cell.source:
            exec(compile(cell.source, f"{stem}.py", "exec"), names)  # noqa: S102 (the bundle's own notebooks)
    return names


@pytest.fixture(scope="module")
def ref() -> dict:
    """Every reference solution, by name."""
    return {name: value for stem in EXERCISE_NOTEBOOKS for name, value in solutions(stem).items()}


CHECKS = {"count_targets": h.check_count_targets, "train_steps": h.check_training_loop,
          "kgram_context": h.check_kgram_context, "KGramMLP": h.check_kgram_mlp, "RMSNorm": h.check_rms_norm,
          "causal_mask": h.check_causal_mask, "causal_attention": h.check_causal_attention,
          "apply_rotary": h.check_rotary, "KVCache": h.check_kv_cache, "nucleus_filter": h.check_nucleus_filter,
          "nucleus_sample": h.check_nucleus_sample}


def failure(check, answer) -> str:
    """The verdict a check gives a wrong answer."""
    with pytest.raises(h.ExerciseCheckFailed) as verdict:
        check(answer)
    return str(verdict.value)


def test_at_least_eight_exercises_each_in_a_notebook_with_its_check_after_it():
    assert len(CHECKS) >= 8
    for stem in EXERCISE_NOTEBOOKS:
        cells = jupytext.read(ROOT / "notebooks" / f"{stem}.py").cells
        for index, cell in enumerate(cells):
            if cell.cell_type == "code" and "### BEGIN SOLUTION" in cell.source:
                check = next(c for c in cells[index + 1:] if c.cell_type == "code")
                assert check.source.startswith("h.check_"), f"{stem}: an exercise without its check after it"
                assert cell.source.count("### BEGIN SOLUTION") == cell.source.count("### END SOLUTION")
                assert "# HINT:" in cell.source, f"{stem}: every solution block has a hint for the stub"


@pytest.mark.parametrize("name", CHECKS)
def test_each_check_passes_the_reference_and_says_what_it_verified(name, ref, capsys):
    CHECKS[name](ref[name])
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"✓ {name}: ") and "\n" not in line


def test_a_check_leaves_the_notebooks_random_generators_where_they_were(ref):
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    h.check_training_loop(ref["train_steps"])
    h.check_nucleus_sample(ref["nucleus_sample"])
    assert torch.equal(torch.rand(3), expected)


# ---------------------------------------------------------------- a verdict, as a student sees it


def stub(*args):
    raise NotImplementedError("pad k-1 zeros before position 0, then unfold")


def test_a_stub_reads_not_written_yet_with_its_hint():
    message = failure(h.check_kgram_context, stub)
    assert message == "✗ kgram_context: stub is not written yet: pad k-1 zeros before position 0, then unfold"


def test_jupyter_shows_a_verdict_as_its_lines_alone():
    try:
        h.check_rms_norm(lambda dim: None)
    except h.ExerciseCheckFailed as verdict:
        lines = verdict._render_traceback_()
    assert 1 <= len(lines) <= 2 and not any("Traceback" in line for line in lines)
    assert "RMSNorm" in lines[0] and lines[1].startswith("  Look at: ")


def test_an_error_in_the_students_code_names_its_line():
    def kgram_context(tokens, k):
        return tokens.unfold(0, k)  # unfold wants a step too

    message = failure(h.check_kgram_context, kgram_context)
    assert "your code raised TypeError at line" in message and "tokens.unfold(0, k)" in message


# ---------------------------------------------------------------- planted mistakes, one per named mistake


def counting(wrong):
    def count_targets(tokens, mask):
        return wrong(tokens, mask) if mask is not None else (tokens.shape[0] - 1) * tokens.shape[1]
    return count_targets


@pytest.mark.parametrize("wrong, named", [
    (counting(lambda tokens, mask: int(mask.sum())), "counts each sequence's first token"),
    (counting(lambda tokens, mask: tokens.numel()), "counts padding as targets"),
    (counting(lambda tokens, mask: (tokens.shape[0] - 1) * tokens.shape[1]), "counts padding as targets"),
    (lambda tokens, mask: tokens.numel() if mask is None else int(mask[1:].sum()), "counts every position"),
    (lambda tokens, mask: int(mask[1:].sum()), "your code raised TypeError"),
    (counting(lambda tokens, mask: str(int(mask[1:].sum()))), "not a whole number"),
])
def test_count_targets_names_each_mistake(wrong, named):
    assert named in failure(h.check_count_targets, wrong)


def training_loop(loss_of, zero_grad: bool = True, step: bool = True, count=h.targets_in, table=pd.DataFrame):
    """The reference loop, with one of its parts changed."""
    def train_steps(model, batches, optimizer, steps):
        rows = []
        for _ in range(steps):
            tokens, mask = next(batches)
            loss = loss_of(model, tokens, mask)
            if zero_grad:
                optimizer.zero_grad()
            loss.backward()
            if step:
                optimizer.step()
            rows.append({"loss": loss.item(), "tokens": count(tokens, mask)})
        return table(rows)
    return train_steps


def masked_loss(model, tokens, mask):
    return model.next_token_loss(tokens, mask)


@pytest.mark.parametrize("wrong, named", [
    (training_loop(masked_loss, step=False), "weights never changed"),
    (training_loop(masked_loss, zero_grad=False), "the first 2 agree, so an update is off"),
    (training_loop(lambda model, tokens, mask: model.next_token_loss(tokens)), "averages over the padding"),
    (training_loop(lambda model, tokens, mask: h.compute_next_token_loss(model(tokens), tokens)),
     "averages over the padding"),
    (training_loop(lambda model, tokens, mask: model.next_token_loss(tokens, mask) * 2), "step 1's loss is"),
    (training_loop(masked_loss, count=lambda tokens, mask: int(mask.sum())), "counts each sequence's first token"),
    (training_loop(masked_loss, count=lambda tokens, mask: tokens.numel()), "counts padding"),
    (training_loop(masked_loss, table=lambda rows: rows[:1]), "one row per step"),
])
def test_the_training_loop_check_names_each_mistake(wrong, named):
    assert named in failure(h.check_training_loop, wrong)


@pytest.mark.parametrize("wrong, named", [
    (lambda tokens, k: h.kgram_windows(tokens, k, include_current=False), "the starter's window t-k..t-1"),
    (lambda tokens, k: h.kgram_windows(tokens, k).flip(-1), "newest first"),
    (lambda tokens, k: F.pad(tokens, (0, 0, 0, k - 1)).unfold(0, k, 1), "position t = 0"),  # padded at the end
    (lambda tokens, k: h.kgram_windows(tokens, k).transpose(0, 1), "wrong shape"),
    (lambda tokens, k: h.kgram_windows(tokens, k).tolist(), "not a tensor"),
])
def test_kgram_context_names_each_mistake(wrong, named):
    assert named in failure(h.check_kgram_context, wrong)


def kgram_mlp(ref, forward):
    """The exercise's class with another forward pass."""
    return type("KGramMLP", (ref["KGramMLP"],), {"forward": forward})


@pytest.mark.parametrize("forward, named", [
    (lambda self, tokens: self.head(self.mlp(self.mix(self.embedding(h.kgram_windows(tokens, self.k, False))
                                                     .flatten(-2)))), "the starter's window"),
    (lambda self, tokens: self.head(self.mix(self.embedding(h.kgram_windows(tokens, self.k)).flatten(-2))),
     "hidden layers (self.mlp) are skipped"),
    (lambda self, tokens: self.head(self.mlp(self.mix(self.embedding(h.kgram_windows(tokens, self.k))
                                                     .transpose(-1, -2).flatten(-2)))), "interleaved"),
    (lambda self, tokens: self.head(self.mlp(self.mix(self.embedding(h.kgram_windows(tokens.roll(-1, 0), self.k))
                                                     .flatten(-2)))), "the future leaks"),
    (lambda self, tokens: self.head(self.mlp(self.mix(self.embedding(h.kgram_windows(tokens, self.k)).flatten(-2))))
     .transpose(0, 1), "wrong shape"),
])
def test_the_kgram_mlp_check_names_each_mistake(ref, forward, named):
    assert named in failure(h.check_kgram_mlp, kgram_mlp(ref, forward))


def test_the_kgram_mlp_check_says_when_the_layers_are_not_the_given_ones(ref):
    class Renamed(ref["KGramMLP"]):
        def __init__(self, *args):
            super().__init__(*args)
            self.output = self.head
            del self.head

    assert "its layers are not the ones __init__ builds" in failure(h.check_kgram_mlp, Renamed)


def rms_norm(ref, forward):
    return type("RMSNorm", (ref["RMSNorm"],), {"forward": forward})


@pytest.mark.parametrize("forward, named", [
    (lambda self, x: F.layer_norm(x, x.shape[-1:], eps=self.eps) * self.weight, "subtracts the mean"),
    (lambda self, x: x * torch.rsqrt(x.pow(2).sum(-1, keepdim=True) + self.eps) * self.weight, "sum of squares"),
    (lambda self, x: x / (x.pow(2).mean(-1, keepdim=True).sqrt() + self.eps) * self.weight, "outside the square"),
    (lambda self, x: x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps), "weight is not applied"),
    (lambda self, x: x * torch.rsqrt(x.pow(2).mean(0, keepdim=True) + self.eps) * self.weight, "the first axis"),
    (lambda self, x: x * torch.rsqrt(x.pow(2).mean(-1) + self.eps) * self.weight, "your code raised RuntimeError"),
    (lambda self, x: x * torch.rsqrt(x.abs().mean(-1, keepdim=True) + self.eps) * self.weight, "differs from"),
])
def test_the_rms_norm_check_names_each_mistake(ref, forward, named):
    assert named in failure(h.check_rms_norm, rms_norm(ref, forward))


@pytest.mark.parametrize("wrong, named", [
    (lambda q_len, kv_len: torch.ones(q_len, kv_len, dtype=torch.bool), "the future leaks"),
    (lambda q_len, kv_len: torch.ones(q_len, kv_len, dtype=torch.bool).triu(kv_len - q_len), "the future leaks"),
    (lambda q_len, kv_len: ~h.causal_mask(q_len, kv_len, "cpu"), "True and False are swapped"),
    (lambda q_len, kv_len: torch.ones(q_len, kv_len, dtype=torch.bool).tril(kv_len - q_len - 1), "to itself"),
    (lambda q_len, kv_len: torch.ones(q_len, kv_len, dtype=torch.bool).tril(), "queries are taken as positions 0"),
    (lambda q_len, kv_len: h.causal_mask(q_len, kv_len, "cpu").float(), "not booleans"),
])
def test_the_causal_mask_check_names_each_mistake(wrong, named):
    assert named in failure(h.check_causal_mask, wrong)


def attention(scale=lambda d: math.sqrt(d), fill=float("-inf"), dim=-1, mask=h.causal_mask, after=False):
    """The reference attention, with one of its parts changed."""
    def causal_attention(q, k, v):
        scores = q @ k.transpose(-2, -1) / scale(q.shape[-1])
        allowed = mask(q.shape[-2], k.shape[-2], "cpu")
        if after:
            return scores.softmax(-1) * allowed @ v
        return scores.masked_fill(~allowed, fill).softmax(dim=dim) @ v
    return causal_attention


@pytest.mark.parametrize("wrong, named", [
    (attention(mask=lambda q_len, kv_len, device: torch.ones(q_len, kv_len, dtype=torch.bool)), "the future leaks"),
    (attention(scale=lambda d: d), "wrong scale: the scores are divided by head_dim"),
    (attention(scale=lambda d: 1.0), "wrong scale: the scores are not scaled"),
    (attention(after=True), "masked after the softmax"),
    (attention(fill=0.0), "still get weight exp(0)"),
    (attention(dim=-2), "the softmax runs over the queries"),
    (attention(mask=lambda q_len, kv_len, device: torch.ones(q_len, kv_len, dtype=torch.bool).tril()),
     "takes the queries as the first positions"),
    (attention(scale=lambda d: math.sqrt(d) * 1.1), "differs from softmax"),
])
def test_the_causal_attention_check_names_each_mistake(wrong, named):
    assert named in failure(h.check_causal_attention, wrong)


def rotary(ref, sign=1.0, ignore_start=False, interleaved=False, slow=False):
    """The reference rotation, with one of its parts changed."""
    def apply_rotary(x, start, base=10_000.0):
        head_dim, seq_len = x.shape[-1], x.shape[-2]
        positions = torch.arange(0 if ignore_start else start, (0 if ignore_start else start) + seq_len).float()
        steps = torch.arange(head_dim // 2).float() if slow else torch.arange(0, head_dim, 2).float()
        angles = torch.outer(positions, base ** (-steps / head_dim))
        if interleaved:
            even, odd = x[..., 0::2], x[..., 1::2]
            return torch.stack([even * angles.cos() - odd * angles.sin(),
                                even * angles.sin() + odd * angles.cos()], -1).flatten(-2)
        angles = angles.repeat(1, 2)
        first, second = x.chunk(2, dim=-1)
        return x * angles.cos() + sign * torch.cat([-second, first], -1) * angles.sin()
    return apply_rotary


@pytest.mark.parametrize("changes, named", [
    ({"ignore_start": True}, "the positions start at 0, not at start = 7"),
    ({"sign": -1.0}, "rotates the wrong way"),
    ({"interleaved": True}, "pairs neighbouring features"),
    ({"slow": True}, "wrong frequencies"),
    ({"sign": 2.0}, "changes the vectors' lengths"),
])
def test_the_rotary_check_names_each_mistake(ref, changes, named):
    assert named in failure(h.check_rotary, rotary(ref, **changes))


class ForgetfulCache:
    """Returns only the new positions' keys and values: the new token sees no cached one."""

    def __init__(self, config, batch_size, device, dtype=torch.float32):
        self.length = 0

    def update(self, block, keys, values):
        return keys, values


class SharedCache:
    """One store for all blocks: right with one block, and each block reads the others' keys with more."""

    def __init__(self, config, batch_size, device, dtype=torch.float32):
        self.length, self.keys, self.values = 0, None, None

    def update(self, block, keys, values):
        if self.keys is not None:
            keys, values = torch.cat([self.keys, keys], -2), torch.cat([self.values, values], -2)
        self.keys, self.values = keys, values
        return keys, values


def counting_cache(ref):
    """The reference cache that also advances `length` itself, on top of the model."""
    class CountingCache(ref["KVCache"]):
        def update(self, block, keys, values):
            self.length += keys.shape[-2]
            return super().update(block, keys, values)
    return CountingCache


def wrong_axis_cache(ref):
    """The reference cache joining the cached and new keys along the heads' axis instead of the positions'."""
    class WrongAxisCache(ref["KVCache"]):
        def update(self, block, keys, values):
            if self.keys[block] is not None:
                keys = torch.cat([self.keys[block], keys], dim=1)
                values = torch.cat([self.values[block], values], dim=1)
            self.keys[block], self.values[block] = keys, values
            return keys, values
    return WrongAxisCache


class NoLengthCache:
    def __init__(self, config, batch_size, device, dtype=torch.float32):
        self.store = {}

    def update(self, block, keys, values):
        return keys, values


class HalfKeysCache(ForgetfulCache):
    """Returns keys of half the head size: the attention's product fails inside the bundle."""

    def update(self, block, keys, values):
        return keys[..., : keys.shape[-1] // 2], values


@pytest.mark.parametrize("make_cache, named", [
    (lambda ref: ForgetfulCache, "does not see the cached positions"),
    (wrong_axis_cache, "your code raised RuntimeError at line"),
    (lambda ref: SharedCache, "right with one block, wrong with two"),
    (counting_cache, "cache.length is"),
    (lambda ref: NoLengthCache, "has no whole-number `length`"),
    (lambda ref: HalfKeysCache, "your code raised RuntimeError"),
])
def test_the_kv_cache_check_names_each_mistake(ref, make_cache, named):
    assert named in failure(h.check_kv_cache, make_cache(ref))


def nucleus(before_mass=True, inclusive=False, renormalise=True, scatter=True, sort=True, one_more=False,
            descending=True):
    """The reference filter, with one of its parts changed."""
    def nucleus_filter(probs, p):
        ranked, ids = probs.sort(dim=-1, descending=descending) if sort else (probs, torch.arange(probs.shape[-1])
                                                                         .expand(probs.shape))
        running = ranked.cumsum(dim=-1) - (ranked if before_mass else 0)
        keep = (running <= p) if inclusive else (running < p)
        if one_more:
            keep[..., 1:] |= keep[..., :-1].clone()
        kept = ranked * keep
        filtered = torch.zeros_like(probs).scatter(-1, ids, kept) if scatter else kept
        return filtered / filtered.sum(dim=-1, keepdim=True) if renormalise else filtered
    return nucleus_filter


@pytest.mark.parametrize("wrong, named", [
    (nucleus(before_mass=False), "keeps no token at p = 0.3"),  # cumsum < p: nothing when the first exceeds p
    (nucleus(before_mass=False, inclusive=True), "keeps no token at p = 0.3"),
    (lambda probs, p: nucleus(before_mass=False)(probs, max(p, 0.5 + 1e-3)), "leaves out the token that crosses p"),
    (lambda probs, p: nucleus(before_mass=p < 1.0)(probs, p), "p = 1.0 must keep every token; yours drops 1"),
    (nucleus(renormalise=False), "sum to 0.5, not 1"),
    (nucleus(scatter=False), "come back in sorted order"),
    (nucleus(sort=False), "keeps tokens in id order, not by probability"),
    (nucleus(one_more=True), "keeps 1 token beyond the nucleus"),
    (nucleus(descending=False), "keeps other tokens than the nucleus"),
    (lambda probs, p: nucleus(renormalise=False)(probs, p).masked_fill(nucleus()(probs, p) == 0, -math.inf)
     .softmax(-1), "not in their original proportions"),
])
def test_the_nucleus_filter_check_names_each_mistake(wrong, named):
    assert named in failure(h.check_nucleus_filter, wrong)


def sampler(ref, choose):
    def nucleus_sample(logits, p, generator=None):
        return choose(ref["nucleus_filter"](logits.softmax(-1), p), logits, p, generator)
    return nucleus_sample


@pytest.mark.parametrize("choose, named", [
    (lambda kept, logits, p, generator: int(logits.argmax()), "the notes' placeholder"),
    (lambda kept, logits, p, generator: int(torch.multinomial(logits.softmax(-1), 1, generator=generator)),
     "outside the top-p nucleus"),
    (lambda kept, logits, p, generator: int(torch.multinomial(kept.sort(descending=True).values, 1,
                                                              generator=generator)), "rank in the sorted order"),
    (lambda kept, logits, p, generator: int(torch.multinomial((kept > 0).float(), 1, generator=generator)),
     "was drawn"),
    (lambda kept, logits, p, generator: int(torch.multinomial(
        nucleus()(logits.softmax(-1), min(p, 0.8)), 1, generator=generator)), "never draws outside the p = 0.8"),
    (lambda kept, logits, p, generator: [int(torch.multinomial(kept, 1, generator=generator))], "not one token id"),
])
def test_the_nucleus_sample_check_names_each_mistake(ref, choose, named):
    assert named in failure(h.check_nucleus_sample, sampler(ref, choose))


def test_the_nucleus_sample_check_says_when_a_small_p_lets_another_token_in(ref):
    def skips_the_top(logits, p, generator=None):
        kept = ref["nucleus_filter"](logits.softmax(-1), p)
        if (kept > 0).sum() == 1:
            kept = logits.softmax(-1) * (logits.softmax(-1) < logits.softmax(-1).max())
        return int(torch.multinomial(kept, 1, generator=generator))

    assert "only that token may be drawn" in failure(h.check_nucleus_sample, skips_the_top)
