"""Sampling: the top-p kept set, the distribution of draws, seeds, bad arguments, and the sampling lab."""

import pytest
import torch

import picollm_helpers as h

# The 0.999 quantile of the chi-square distribution with 3 degrees of freedom.
CHI2_3_DOF_999 = 16.266


def kept(probs: list[float], p: float) -> list[int]:
    return h.nucleus_mask(torch.tensor(probs), p).nonzero().flatten().tolist()


@pytest.mark.parametrize("probs, p, expected", [
    ([0.5, 0.3, 0.2], 0.8, [0, 1]),  # p exactly on a boundary stops there
    ([0.5, 0.3, 0.2], 0.81, [0, 1, 2]),  # the token that crosses p is kept
    ([0.5, 0.3, 0.2], 0.5, [0]),
    ([0.2, 0.5, 0.3], 0.6, [1, 2]),  # order of the vocabulary does not matter
    ([0.1, 0.2, 0.7], 1e-9, [2]),  # a tiny p keeps the most probable token, always
    ([0.1, 0.2, 0.7], 1.0, [0, 1, 2]),  # p = 1 keeps the whole distribution
    ([0.3, 0.7, 0.0], 1.0, [0, 1]),  # a token of probability 0 adds nothing to the mass
])
def test_kept_set_on_hand_made_distributions(probs, p, expected):
    assert kept(probs, p) == expected


def test_ties_keep_the_smallest_set_that_reaches_p():
    assert len(kept([0.25, 0.25, 0.25, 0.25], 0.5)) == 2
    assert len(kept([0.25, 0.25, 0.25, 0.25], 0.51)) == 3


def test_works_on_a_batch_of_rows():
    probs = torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]])
    assert h.nucleus_mask(probs, 0.75).tolist() == [[True, True, False], [False, False, True]]
    tokens = h.sample_next_token(torch.randn(4, 5, 11), top_p=0.9)
    assert tokens.shape == (4, 5)


def test_filtered_logits_renormalize_to_the_nucleus():
    logits = torch.tensor([2.0, 1.0, 0.5, -1.0, -3.0])
    probs = logits.softmax(-1)
    filtered = h.filter_logits(logits, top_p=0.8).softmax(-1)
    mask = h.nucleus_mask(probs, 0.8)
    torch.testing.assert_close(filtered[mask], probs[mask] / probs[mask].sum())
    assert (filtered[~mask] == 0).all()
    torch.testing.assert_close(h.filter_logits(logits, top_p=1.0), logits)


def test_temperature_then_top_k_then_top_p():
    logits = torch.tensor([3.0, 2.0, 1.0, 0.0])
    assert torch.isinf(h.filter_logits(logits, top_k=2)).tolist() == [False, False, True, True]
    sharp = h.filter_logits(logits, temperature=0.1, top_p=0.9)
    assert torch.isfinite(sharp).tolist() == [True, False, False, False]


def test_draws_follow_the_renormalized_nucleus_distribution():
    """A chi-square goodness-of-fit test over 20,000 draws, at the 0.1 % level."""
    logits = torch.log(torch.tensor([0.35, 0.25, 0.2, 0.1, 0.06, 0.04]))
    p = 0.85  # keeps the first four tokens, mass 0.9
    generator = torch.Generator().manual_seed(0)
    draws = h.sample_next_token(logits.expand(20_000, -1), top_p=p, generator=generator)
    counts = torch.bincount(draws, minlength=6).double()
    assert counts[4:].sum() == 0, "a token outside the nucleus was drawn"
    expected = torch.tensor([0.35, 0.25, 0.2, 0.1], dtype=torch.float64) / 0.9 * 20_000
    chi_square = ((counts[:4] - expected) ** 2 / expected).sum().item()
    assert chi_square < CHI2_3_DOF_999, f"chi-square {chi_square:.2f} with 3 degrees of freedom"


@pytest.mark.parametrize("uniform, expected", [(0.0, 1), (0.25, 3), (1 - 2 ** -53, 3)])
def test_a_draw_at_either_end_of_the_uniform_lands_on_an_id_that_can_be_drawn(uniform, expected, monkeypatch):
    """Ids of probability 0 lie before, between and after the possible ones: the smallest uniform number picks
    the first possible id, the largest (torch.rand stays below 1) the last, a number on a boundary the next."""
    monkeypatch.setattr(torch, "rand", lambda shape, dtype, device, generator: torch.full(shape, uniform, dtype=dtype))
    probs = torch.tensor([[0.0, 0.25, 0.0, 0.75, 0.0, 0.0]])
    assert h.draw(probs).tolist() == [expected]


def test_seeds_reproduce_and_differ():
    torch.manual_seed(0)
    model = h.LSTMSeqModel(200, embed_size=8, hidden_size=8)
    first = h.generate_tokens(model, [1, 2, 3], 15, h.Decoding(top_p=0.95), seed=7).tokens
    again = h.generate_tokens(model, [1, 2, 3], 15, h.Decoding(top_p=0.95), seed=7).tokens
    other = h.generate_tokens(model, [1, 2, 3], 15, h.Decoding(top_p=0.95), seed=8).tokens
    assert first == again and first != other


def test_greedy_is_the_argmax_and_p_changes_the_text():
    torch.manual_seed(0)
    model = h.LSTMSeqModel(200, embed_size=8, hidden_size=8)
    greedy = h.generate_tokens(model, [1, 2, 3], 10).tokens
    logits = h.next_token_log_probs(model, [1, 2, 3])
    assert greedy[0] == int(logits.argmax())
    samples = {tuple(h.generate_tokens(model, [1, 2, 3], 10, h.Decoding(top_p=p), seed=0).tokens)
               for p in (0.05, 0.5, 1.0)}
    assert len(samples) > 1, "every p gave the same text (the notes' placeholder bug)"


def test_starter_entry_point_draws_from_the_nucleus():
    logits = torch.tensor([5.0, 4.0, -10.0, -10.0])
    generator = torch.Generator().manual_seed(0)
    drawn = {h.nucleus_sampling(logits, 0.99, generator=generator) for _ in range(200)}
    assert drawn == {0, 1}
    assert h.nucleus_sampling(logits, 1e-6) == 0
    with pytest.raises(ValueError, match="1-D"):
        h.nucleus_sampling(torch.zeros(2, 4), 0.9)


@pytest.mark.parametrize("arguments, message", [
    (dict(top_p=0.0), r"top_p=0.0 must lie in \(0, 1\]"),
    (dict(top_p=1.5), r"top_p=1.5 must lie in \(0, 1\]"),
    (dict(top_p=-0.2), r"must lie in \(0, 1\]"),
    (dict(temperature=0.0), "temperature=0.0 must be above 0"),
    (dict(top_k=0), "top_k=0 must be a whole number at least 1"),
])
def test_bad_arguments_fail_clearly(arguments, message):
    with pytest.raises(ValueError, match=message):
        h.filter_logits(torch.randn(10), **arguments)
    with pytest.raises(ValueError, match=message):
        h.generate_tokens(h.LSTMSeqModel(10, embed_size=4, hidden_size=4), [1], 3, h.Decoding(**arguments))


def test_lab_builds_headless_and_the_p_slider_resamples(enc):
    torch.manual_seed(0)
    models = {"LSTM": h.LSTMSeqModel(enc.n_vocab, embed_size=16, hidden_size=16),
              "k-gram": h.KGramMLPSeqModel(enc.n_vocab, k=2, embed_size=16)}
    lab = h.sampling_lab(models, enc, p=1.0, seed=0, max_new_tokens=12)
    text, chart = lab.text, lab.chart.value
    assert text.startswith("Once upon a") and len(chart) > 1000
    lab.p_slider.value = 0.02
    assert lab.text != text and lab.chart.value != chart
    text = lab.text
    lab.resample_button.click()
    assert lab.seed_box.value == 1 and lab.text != text
    lab.model_dropdown.value = "k-gram"
    assert lab.text.startswith("Once upon a")
    lab.prompt_box.value = ""
    assert "Cannot sample" in lab.text_output.value


def test_lab_needs_a_model(enc):
    with pytest.raises(ValueError, match="at least one model"):
        h.sampling_lab({}, enc)


def test_the_nucleus_found_among_the_top_candidates_is_the_one_a_full_ranking_finds():
    """The partial sort is only a shortcut: on flat and sharp distributions, with ties, every p gives the mask
    that ranking all 50,257 tokens (ties by id) gives."""
    def ranked_all(probs, p):
        ranked, order = probs.double().sort(dim=-1, descending=True, stable=True)
        keep = ranked.cumsum(dim=-1) - ranked < p - h.BOUNDARY_TOLERANCE
        keep[..., 0] = True
        return torch.zeros_like(keep).scatter(-1, order, keep)

    generator = torch.Generator().manual_seed(0)
    for trial in range(40):
        logits = torch.randn(2, 50257, generator=generator) * (0.5, 3.0, 8.0, 15.0)[trial % 4]
        if trial % 3 == 0:
            logits = (logits * 2).round() / 2  # many exact ties
        probs = logits.softmax(dim=-1)
        for p in (0.1, 0.5, 0.9, 0.99, 1.0):
            assert torch.equal(h.nucleus_mask(probs, p), ranked_all(probs, p)), (trial, p)
