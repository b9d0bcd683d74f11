"""Output heads: full and compact heads give proper distributions over every GPT-2 id; the fused loss equals the
plain one and never holds a whole batch's logits; a compact model samples only what it can produce, in proportion."""

import math

import pytest
import torch
import torch.nn.functional as F

import picollm_helpers as h

V = 50257
KEPT = [0, 13, 198, 262, 290, 318, 1110, 4222, 50256]
FAMILIES = {
    "kgram onehot": ("kgram", dict(vocab_size=V, k=2, embed_size=16, variant="onehot")),
    "kgram conv": ("kgram", dict(vocab_size=V, k=3, embed_size=16, variant="conv")),
    "lstm": ("lstm", dict(vocab_size=V, embed_size=16, hidden_size=16)),
    "transformer": ("transformer", dict(vocab_size=V, d_model=16, n_heads=2, n_blocks=2, d_ff=32, max_seq_len=32)),
    "transformer untied": ("transformer", dict(vocab_size=V, d_model=16, n_heads=2, n_blocks=1, d_ff=32,
                                               max_seq_len=32, tie_weights=False, positions="rope", ffn="swiglu")),
}


def build(name, compact, seed=0, bucket="plays"):
    family, config = FAMILIES[name]
    torch.manual_seed(seed)
    model = h.build_model(family, **config, vocab_ids=KEPT if compact else None, bucket=bucket)
    for parameter in model.parameters():  # sharper than the initial weights, so that mistakes show
        torch.nn.init.normal_(parameter, std=0.3)
    return model


@pytest.mark.parametrize("compact", [False, True], ids=["full", "compact"])
@pytest.mark.parametrize("name", FAMILIES)
def test_log_probs_are_a_distribution_over_every_gpt2_id(name, compact):
    model = build(name, compact)
    tokens = torch.randint(0, V, (7, 3))
    log_probs = model.log_probs(tokens)
    assert log_probs.shape == (7, 3, V)
    assert (log_probs.double().exp().sum(-1) - 1).abs().max() < 1e-4


def bucket_and_its_class(bucket_prior):
    model = build("lstm", compact=True, bucket=bucket_prior)
    log_probs = model.log_probs(torch.tensor([[13], [198]]))[-1, 0]
    in_bucket = torch.ones(V, dtype=torch.bool)
    in_bucket[KEPT] = False
    bucket_class = model(torch.tensor([[13], [198]]))[-1, 0].log_softmax(-1)[-1]
    return log_probs, in_bucket, bucket_class


def test_a_uniform_bucket_shares_its_probability_evenly():
    log_probs, in_bucket, bucket_class = bucket_and_its_class("uniform")
    assert torch.allclose(log_probs[in_bucket], log_probs[in_bucket][0].expand(int(in_bucket.sum())))
    assert log_probs[in_bucket][0].item() == pytest.approx((bucket_class - math.log(V - len(KEPT))).item(), abs=1e-5)


def test_the_plays_bucket_shares_its_probability_by_how_often_each_id_occurs_in_the_plays():
    log_probs, in_bucket, bucket_class = bucket_and_its_class("plays")
    assert log_probs[in_bucket].double().exp().sum().item() == pytest.approx(bucket_class.exp().item(), rel=1e-4)
    counts = torch.from_numpy(h.plays_token_counts()).double() + 0.5
    thee, nonsense = 17903, 48447  # " thee", common in the plays; " Quadro", which they never use
    assert counts[thee] > 100 and counts[nonsense] == 0.5
    assert (log_probs[thee] - log_probs[nonsense]).item() == pytest.approx(math.log(counts[thee] / 0.5), rel=1e-4)


def test_a_checkpoint_from_before_the_prior_loads_with_the_uniform_bucket(tmp_path):
    model = build("lstm", compact=True, bucket="uniform")
    payload = h.checkpoint_payload(model)
    del payload["bucket"]
    torch.save(payload, tmp_path / "old.pt")
    loaded = h.load_checkpoint(tmp_path / "old.pt")
    tokens = torch.tensor([[13], [198]])
    assert loaded.vocabulary.prior == "uniform"
    assert torch.allclose(loaded.log_probs(tokens), model.log_probs(tokens), atol=1e-6)


@pytest.mark.parametrize("compact", [False, True], ids=["full", "compact"])
@pytest.mark.parametrize("name", FAMILIES)
def test_the_loss_is_the_full_vocabulary_cross_entropy(name, compact):
    model = build(name, compact)
    tokens = torch.randint(0, V, (9, 2))
    tokens[3, 1] = 7  # an id outside the compact vocabulary: it costs a finite loss through the bucket
    expected = -model.log_probs(tokens)[:-1].gather(-1, tokens[1:].unsqueeze(-1)).mean()
    for fused in (True, False):
        loss = model.next_token_loss(tokens, fused=fused)
        assert torch.isfinite(loss)
        assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


@pytest.mark.parametrize("compact", [False, True], ids=["full", "compact"])
@pytest.mark.parametrize("name", ["kgram onehot", "lstm", "transformer", "transformer untied"])
def test_fused_loss_equals_the_plain_loss_and_gradient(name, compact):
    tokens = torch.randint(0, V, (12, 3))
    mask = torch.ones(12, 3, dtype=torch.bool)
    mask[8:, 1] = False  # a padded sequence, as the per-example path gives
    results = {}
    for fused in (True, False):
        model = build(name, compact)
        loss = model.next_token_loss(tokens, mask, fused=fused)
        loss.backward()
        results[fused] = (loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()})
    (fused_loss, fused_grads), (plain_loss, plain_grads) = results[True], results[False]
    assert (fused_loss - plain_loss).abs() <= 1e-5
    for parameter, grad in plain_grads.items():
        assert (fused_grads[parameter] - grad).abs().max() <= 1e-5, parameter


@pytest.mark.parametrize("compact", [False, True], ids=["full", "compact"])
@pytest.mark.parametrize("chunk_rows", [1024, 4])
@pytest.mark.parametrize("variant", h.KGramMLPSeqModel.VARIANTS)
def test_distinct_windows_give_the_loss_and_gradient_of_every_window(variant, chunk_rows, compact, monkeypatch):
    """A k-gram model computes each distinct window of a batch once; a batch whose lines repeat (as the notes'
    3seqs.txt does), with padding, must give the loss and gradient of computing every position's window."""
    monkeypatch.setattr(h.heads, "FUSED_CHUNK_ROWS", chunk_rows)
    ids = torch.tensor(KEPT + [7, 1000, 20000])  # kept ids and, for the compact head, ids in its bucket
    line = ids[torch.randint(0, len(ids), (10, 1))]
    tokens = torch.cat([line, line, ids[torch.randint(0, len(ids), (10, 1))], line], dim=1)
    mask = torch.ones_like(tokens, dtype=torch.bool)
    mask[6:, 1] = False  # the same windows, padded in one sequence: only the others' targets count
    results = {}
    for distinct, fused in [(False, False), (True, True), (True, False)]:
        torch.manual_seed(0)
        model = h.build_model("kgram", vocab_size=V, k=2, embed_size=16, variant=variant,
                              vocab_ids=KEPT if compact else None, distinct_windows=distinct)
        for parameter in model.parameters():
            torch.nn.init.normal_(parameter, std=0.3)
        loss = model.next_token_loss(tokens, mask, fused=fused)
        loss.backward()
        results[distinct, fused] = (loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()})
    every_loss, every_grads = results[False, False]
    for loss, grads in (results[True, True], results[True, False]):
        assert (loss - every_loss).abs() <= 1e-5
        for parameter, grad in every_grads.items():
            assert (grads[parameter] - grad).abs().max() <= 1e-5, parameter


def test_a_target_is_scored_from_the_row_it_names():
    """The fused loss with several targets sharing rows of hidden states is the mean of each target's
    cross-entropy from its own row, and leaves out the targets that weigh nothing."""
    torch.manual_seed(0)
    hidden, weight, bias = torch.randn(3, 8), torch.randn(50, 8), torch.randn(50)
    rows, classes = torch.tensor([2, 0, 2, 2, 1]), torch.tensor([7, 7, 7, 30, 49])
    weights = torch.tensor([0.25, 0.25, 0.25, 0.25, 0.0])
    expected = (F.cross_entropy(F.linear(hidden, weight, bias)[rows], classes, reduction="none") * weights).sum()
    assert h.heads.fused_linear_cross_entropy(hidden, weight, bias, classes, weights, rows) == pytest.approx(
        expected.item(), rel=1e-6)
    assert h.heads.fused_linear_cross_entropy(hidden, weight, bias, classes, weights, rows.flip(0)) != pytest.approx(
        expected.item(), rel=1e-3)


def test_the_fused_loss_never_holds_the_whole_batchs_logits(monkeypatch):
    model = build("transformer", compact=False)
    shapes, linear = [], F.linear

    def recording_linear(*args, **kwargs):
        out = linear(*args, **kwargs)
        shapes.append(tuple(out.shape))
        return out

    monkeypatch.setattr(h.heads.F, "linear", recording_linear)
    monkeypatch.setattr(h.heads, "FUSED_CHUNK_ROWS", 10)
    tokens = torch.randint(0, V, (16, 4))  # 60 positions
    model.next_token_loss(tokens, fused=True).backward()
    head_outputs = [shape for shape in shapes if shape[-1] == V]
    assert head_outputs and max(rows for rows, _ in head_outputs) <= 10


def test_compact_sampling_draws_only_what_the_model_can_produce_in_proportion():
    model = build("lstm", compact=True).eval()
    prompt = [13, 198]
    log_probs = h.next_token_log_probs(model, prompt)
    probs = log_probs.double().exp()
    generator = torch.Generator().manual_seed(0)
    draws = torch.cat([h.sample_next_token(log_probs.expand(500, -1), generator=generator) for _ in range(16)])
    bucket = torch.ones(V, dtype=torch.bool)
    bucket[KEPT] = False
    counts = torch.stack([(draws == i).sum() for i in KEPT] + [bucket[draws].sum()]).double()
    expected = torch.cat([probs[KEPT], probs[bucket].sum().view(1)]) * len(draws)
    chi_square = ((counts - expected) ** 2 / expected).sum().item()
    assert chi_square < 26.1, "9 degrees of freedom, p = 0.002"  # kept ids and the bucket, drawn in proportion
    from_bucket = draws[bucket[draws]]
    shares = probs[bucket] / probs[bucket].sum()
    frequent = bucket.nonzero().flatten()[shares.argsort(descending=True)[:20]]
    expected_share = shares.sort(descending=True).values[:20].sum().item()
    assert 0.2 < expected_share < 0.8, "the prior puts much, not all, of the bucket on the plays' common ids"
    assert abs(torch.isin(from_bucket, frequent).double().mean().item() - expected_share) < 0.05, \
        "a bucket draw is one of its ids, in proportion to the bucket's prior"


def test_greedy_and_nucleus_read_the_full_distribution():
    """The bucket is many ids of tiny probability each, not one token: a nucleus never takes it whole."""
    model = build("lstm", compact=True).eval()
    for parameter in model.lm_head.parameters():
        torch.nn.init.zeros_(parameter)  # every class equally likely: the bucket holds 1/10 of the mass
    log_probs = h.next_token_log_probs(model, [13])
    assert set(h.nucleus_mask(log_probs.exp(), 0.85).nonzero().flatten().tolist()) <= set(KEPT)
    assert int(h.sample_next_token(log_probs, greedy=True)) in KEPT


def test_vocabulary_from_a_corpus(enc):
    stream = torch.tensor([5, 5, 9, 9, 9, 11]).numpy()
    assert h.ids_seen([stream], V, min_count=1) == [5, 9, 11]
    assert h.ids_seen([stream], V, min_count=2) == [5, 9]
    with pytest.raises(ValueError, match="min_count=0"):
        h.ids_seen([stream], V, min_count=0)
    with pytest.raises(ValueError, match="--min_count"):
        h.ids_seen([stream], V, min_count=4)
    with pytest.raises(ValueError, match="at least one id"):
        h.Vocabulary(V, [])


def test_a_prompt_the_compact_model_never_saw_still_generates_and_says_so_once(enc, capsys, monkeypatch):
    monkeypatch.setattr(h.sampling, "NOTED", set())
    model = build("transformer", compact=True)
    text = h.generate_text(model, enc, "Zebras quietly", max_new_tokens=5, seed=0)
    assert text.startswith("Zebras quietly") and len(text) > len("Zebras quietly")
    h.generate_text(model, enc, "Zebras quietly", max_new_tokens=5, seed=1)
    err = capsys.readouterr().err
    assert err.count("never saw") == 1 and "' quietly'" in err, "said once a process, however many samples"
