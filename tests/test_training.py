"""train_model's history, determinism, evaluation and checkpoints."""

import math

import pytest
import torch

import picollm_helpers as h
from conftest import ROOT


@pytest.fixture(scope="module")
def corpus(enc):
    return h.build_corpus(enc, 32, tinystories_weight=0.0, input_dir=ROOT / "data" / "custom_corpus",
                          test_fraction=0.25, seed=0)


def train_lstm(corpus, seed=0, steps=4):
    h.seed_everything(seed)
    model = h.LSTMSeqModel(50257, embed_size=16, hidden_size=16)
    history = h.train_model(model, corpus.train_loader(8, seed=seed), epochs=2, max_steps_per_epoch=steps // 2,
                            test_loader=corpus.test_loader(8), eval_every=1, progress=False)
    return model, history


def test_history_has_one_row_per_step(corpus):
    _, history = train_lstm(corpus)
    assert list(history.columns) == h.HISTORY_COLUMNS
    assert history["step"].tolist() == [1, 2, 3, 4] and history["epoch"].tolist() == [1, 1, 2, 2]
    assert (history["tokens"] > 0).all() and (history["tokens_per_s"] > 0).all()
    assert history["elapsed_s"].is_monotonic_increasing
    assert history["test_loss"].notna().all()
    assert abs(history["loss"].iloc[0] - math.log(50257)) < 0.2


def test_loss_goes_down_on_repeated_data(enc):
    corpus = h.build_corpus(enc, 32, tinystories_weight=0.0, input_files=["3seqs.txt"])
    h.seed_everything(0)
    model = h.LSTMSeqModel(50257, embed_size=32, hidden_size=32)
    history = h.train_model(model, corpus.train_loader(3), epochs=30, learning_rate=1e-2, progress=False)
    assert history["loss"].iloc[-1] < history["loss"].iloc[0] - 3


def test_fixed_seeds_give_the_same_losses(corpus):
    _, first = train_lstm(corpus, seed=1)
    _, again = train_lstm(corpus, seed=1)
    _, other = train_lstm(corpus, seed=2)
    assert first["loss"].tolist() == again["loss"].tolist()
    assert first["test_loss"].tolist() == again["test_loss"].tolist()
    assert first["loss"].tolist() != other["loss"].tolist()


def test_evaluate_weights_by_tokens(corpus):
    model, _ = train_lstm(corpus)
    loader = corpus.test_loader(4)
    whole = h.evaluate(model, loader)
    per_batch = [(h.evaluate(model, [batch]), h.targets_in(batch[1])) for batch in loader]
    assert whole == pytest.approx(sum(l * n for l, n in per_batch) / sum(n for _, n in per_batch), rel=1e-6)


def test_bad_training_arguments(corpus):
    model = h.LSTMSeqModel(50257, embed_size=8, hidden_size=8)
    with pytest.raises(h.InputError, match="learning_rate"):
        h.train_model(model, corpus.train_loader(4), learning_rate=0)
    with pytest.raises(h.InputError, match="epochs=0"):
        h.train_model(model, corpus.train_loader(4), epochs=0)


def test_checkpoint_rebuilds_the_same_model(corpus, tmp_path, enc):
    model, _ = train_lstm(corpus)
    path = h.save_checkpoint(model, tmp_path / "lstm.pt", note="test")
    assert not list(tmp_path.glob(".*.tmp"))
    loaded = h.load_checkpoint(path)
    assert loaded.checkpoint_metadata == {"note": "test"}
    tokens = torch.randint(0, 50257, (10, 2))
    model.eval()
    assert torch.equal(model(tokens), loaded(tokens))
    assert h.generate_text(model, enc, "Once", 8) == h.generate_text(loaded, enc, "Once", 8)


def test_transformer_checkpoint_keeps_tied_weights(tmp_path):
    model = h.TransformerModel(vocab_size=60, d_model=16, n_heads=2, n_blocks=1, d_ff=32, tie_weights=True)
    loaded = h.load_checkpoint(h.save_checkpoint(model, tmp_path / "t.pt"))
    assert loaded.lm_head.weight is loaded.token_embedding.weight
    tokens = torch.randint(0, 60, (5, 1))
    model.eval()
    assert torch.equal(model(tokens), loaded(tokens))


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(h.InputError, match="No checkpoint"):
        h.load_checkpoint(tmp_path / "nothing.pt")
