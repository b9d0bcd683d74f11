"""The loss, the LSTM baseline and the model factory (the k-gram MLP and Transformer have their own files)."""

import math

import pytest
import torch

import picollm_helpers as h

LN_V = math.log(50257)


def test_loss_pairs_logits_at_t_with_token_t_plus_one():
    vocab = 5
    tokens = torch.tensor([[1], [2], [3]])
    logits = torch.full((3, 1, vocab), -1e4)
    logits[0, 0, 2] = logits[1, 0, 3] = 0.0  # position t puts all mass on token t+1
    assert h.compute_next_token_loss(logits, tokens).item() == pytest.approx(0.0, abs=1e-4)
    shifted_wrong = torch.roll(logits, 1, dims=0)
    assert h.compute_next_token_loss(shifted_wrong, tokens).item() > 100


def test_loss_ignores_padding():
    torch.manual_seed(0)
    logits = torch.randn(4, 2, 7)
    tokens, mask = h.seq_collate_fn([torch.tensor([1, 2, 3, 4]), torch.tensor([5, 6])])
    padded = h.compute_next_token_loss(logits, tokens, mask)
    # Only sequence 0's three targets and sequence 1's one target count.
    log_probs = logits.log_softmax(-1)
    expected = -(log_probs[0, 0, 2] + log_probs[1, 0, 3] + log_probs[2, 0, 4] + log_probs[0, 1, 6]) / 4
    assert padded.item() == pytest.approx(expected.item(), rel=1e-5)


def test_loss_of_a_single_token_is_zero():
    assert h.compute_next_token_loss(torch.randn(1, 3, 10), torch.zeros(1, 3, dtype=torch.long)).item() == 0.0


def test_lstm_shapes_and_initial_loss():
    torch.manual_seed(0)
    model = h.LSTMSeqModel(50257, embed_size=64, hidden_size=64, num_layers=2)
    tokens = torch.randint(0, 50257, (32, 4))
    logits = model(tokens)
    assert logits.shape == (32, 4, 50257)
    assert abs(h.compute_next_token_loss(logits, tokens).item() - LN_V) < 0.1


def test_lstm_rejects_bad_sizes_and_ids():
    with pytest.raises(ValueError, match="hidden_size=0"):
        h.LSTMSeqModel(100, embed_size=8, hidden_size=0)
    with pytest.raises(ValueError, match=r"\[0, 100\)"):
        h.LSTMSeqModel(100, embed_size=8, hidden_size=8)(torch.tensor([[5], [100]]))


def test_factory_builds_each_family_from_its_config():
    for family, config in [("lstm", dict(vocab_size=50, embed_size=8, hidden_size=8)),
                           ("kgram", dict(vocab_size=50, k=2, embed_size=8)),
                           ("transformer", dict(vocab_size=50, d_model=16, n_heads=2, n_blocks=1, d_ff=32))]:
        model = h.build_model(family, **config)
        assert h.family_of(model) == family
        rebuilt = h.build_model(family, **model.config)
        assert h.count_parameters(rebuilt) == h.count_parameters(model)
    with pytest.raises(ValueError, match="Unknown model family"):
        h.build_model("gru")
