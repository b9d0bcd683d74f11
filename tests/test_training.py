"""train_model's history, budgets, recipe and determinism; evaluation and checkpoints."""

import json
import math
from dataclasses import replace

import pytest
import torch

import picollm_helpers as h
from conftest import ROOT


@pytest.fixture(scope="module")
def corpus(enc):
    return h.build_corpus(enc, 32, h.TrainingText(base_weight=0.0, input_dir=ROOT / "data" / "custom_corpus",
                                                  test_fraction=0.25, seed=0))


def train_lstm(corpus, seed=0, steps=4):
    h.seed_everything(seed)
    model = h.LSTMSeqModel(50257, embed_size=16, hidden_size=16)
    run = h.TrainingRun(budget=h.Budget(max_steps=steps, steps_per_epoch=steps // 2), batch_size=8, seed=seed,
                        evaluation=h.Evaluation(every=1))
    return model, h.train_model(model, corpus, run, progress=False)


def test_history_has_one_row_per_step(corpus):
    _, history = train_lstm(corpus)
    assert list(history.columns) == h.HISTORY_COLUMNS
    assert history["step"].tolist() == [1, 2, 3, 4] and history["epoch"].tolist() == [1, 1, 2, 2]
    assert (history["tokens"] > 0).all() and (history["tokens_per_s"] > 0).all()
    assert history["elapsed_s"].is_monotonic_increasing
    assert history["test_loss"].notna().all()
    assert abs(history["loss"].iloc[0] - math.log(50257)) < 0.2


@pytest.mark.parametrize("packing", [True, False])
def test_loss_goes_down_on_repeated_data(enc, packing):
    corpus = h.build_corpus(enc, 32, h.TrainingText(base_weight=0.0, input_files=["3seqs.txt"]), packing=packing)
    h.seed_everything(0)
    model = h.LSTMSeqModel(50257, embed_size=32, hidden_size=32)
    run = h.TrainingRun(budget=h.Budget(max_steps=30), batch_size=3, recipe=h.Recipe(learning_rate=1e-2))
    history = h.train_model(model, corpus, run, progress=False)
    assert history["loss"].iloc[-1] < history["loss"].iloc[0] - 3


def test_fixed_seeds_give_the_same_losses(corpus):
    _, first = train_lstm(corpus, seed=1)
    _, again = train_lstm(corpus, seed=1)
    _, other = train_lstm(corpus, seed=2)
    assert first["loss"].tolist() == again["loss"].tolist()
    assert first["test_loss"].tolist() == again["test_loss"].tolist()
    assert first["loss"].tolist() != other["loss"].tolist()


@pytest.mark.parametrize("packing", [True, False])
def test_evaluate_counts_every_heldout_target_once(enc, packing):
    corpus = h.build_corpus(enc, 16, h.TrainingText(base_weight=0.0, input_dir=ROOT / "data" / "custom_corpus",
                                                    test_fraction=0.25, seed=0), packing=packing)
    h.seed_everything(0)
    model = h.LSTMSeqModel(50257, embed_size=16, hidden_size=16).eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for tokens, mask in corpus.heldout_batches(5):
            log_probs = model.log_probs(tokens)[:-1].gather(-1, tokens[1:].unsqueeze(-1)).squeeze(-1)
            counted = torch.ones_like(log_probs, dtype=torch.bool) if mask is None else mask[1:]
            total -= float(log_probs[counted].sum())
            count += int(counted.sum())
    if packing:
        assert count == corpus.num_heldout_tokens - 1, "every held-out token but the first is a target once"
    assert h.evaluate(model, corpus, batch_size=7).nats_per_token == pytest.approx(total / count, rel=1e-5)


def test_bad_training_arguments(corpus):
    model = h.LSTMSeqModel(50257, embed_size=8, hidden_size=8)
    with pytest.raises(h.InputError, match="learning_rate"):
        h.train_model(model, corpus, h.TrainingRun(h.Budget(max_steps=2), recipe=h.Recipe(learning_rate=0)))
    with pytest.raises(h.InputError, match="max_steps=0"):
        h.train_model(model, corpus, h.TrainingRun(h.Budget(max_steps=0)))
    with pytest.raises(h.InputError, match="train_seconds"):
        h.train_model(model, corpus, h.TrainingRun(h.Budget(train_seconds=0)))
    with pytest.raises(h.InputError, match="one budget"):
        h.train_model(model, corpus, h.TrainingRun(h.Budget(max_steps=3, train_seconds=3)))
    with pytest.raises(h.InputError, match="--warmup_steps"):
        h.train_model(model, corpus, h.TrainingRun(h.Budget(max_steps=3), recipe=h.Recipe(warmup_steps=3)))
    with pytest.raises(h.InputError, match="--block_size"):
        h.train_model(h.TransformerModel(d_model=8, n_heads=2, n_blocks=1, d_ff=16, max_seq_len=16), corpus,
                      h.TrainingRun(h.Budget(max_steps=2)))


@pytest.mark.parametrize("compact", [False, True])
def test_checkpoint_rebuilds_the_same_model(corpus, tmp_path, enc, compact):
    h.seed_everything(0)
    model = h.LSTMSeqModel(50257, embed_size=16, hidden_size=16,
                           vocab_ids=h.ids_seen(corpus.train_streams(), 50257) if compact else None)
    h.train_model(model, corpus, h.TrainingRun(h.Budget(max_steps=2), batch_size=8), progress=False)
    path = h.save_checkpoint(model, tmp_path / "lstm.pt", note="test")
    assert not list(tmp_path.glob(".*.tmp"))
    loaded = h.load_checkpoint(path)
    assert loaded.checkpoint_metadata["note"] == "test"
    assert loaded.checkpoint_metadata["precision"] == "fp32", "how the model trained travels with it"
    assert loaded.vocabulary.ids() == model.vocabulary.ids()
    tokens = torch.randint(0, 50257, (10, 2))
    model.eval()
    assert torch.equal(model.log_probs(tokens), loaded.log_probs(tokens))
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


def test_damaged_or_foreign_checkpoints_are_clear_errors(tmp_path, corpus):
    model = h.LSTMSeqModel(50257, embed_size=8, hidden_size=8, vocab_ids=h.ids_seen(corpus.train_streams(), 50257))
    path = h.save_checkpoint(model, tmp_path / "lstm.pt")
    payload = torch.load(path, weights_only=True)
    for name, damage in {"missing": lambda p: p.pop("vocab_ids"),
                         "repeated": lambda p: p["vocab_ids"].append(p["vocab_ids"][0]),
                         "out of range": lambda p: p["vocab_ids"].__setitem__(-1, 60000),
                         "wrong length": lambda p: p["vocab_ids"].pop()}.items():
        broken = {**payload, "vocab_ids": list(payload["vocab_ids"])}
        damage(broken)
        torch.save(broken, tmp_path / "broken.pt")
        with pytest.raises(h.InputError, match="vocab_ids") as error:
            h.load_checkpoint(tmp_path / "broken.pt")
        assert "broken.pt" in str(error.value), name
    (tmp_path / "text.pt").write_text("not a checkpoint")
    with pytest.raises(h.InputError, match="not a pico-llm checkpoint"):
        h.load_checkpoint(tmp_path / "text.pt")


def test_cosine_schedule_warms_up_then_decays_to_a_tenth():
    schedule = h.Schedule(h.Recipe(learning_rate=1.0, warmup_steps=10), max_steps=110)
    rates = [schedule.rate(step) for step in range(110)]
    assert rates[0] == pytest.approx(0.1) and rates[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(rates[9:], rates[10:])), "non-increasing after the warm-up"
    assert rates[-1] == pytest.approx(0.1, abs=1e-3)
    assert h.Schedule(h.Recipe(learning_rate=1.0), max_steps=200).warmup_steps == 10, "auto: a twentieth"
    constant = h.Schedule(h.STARTER_RECIPE, max_steps=50)
    assert {constant.rate(step) for step in range(50)} == {1e-3}


def test_time_budget_estimates_the_steps_that_fit():
    schedule = h.Schedule(h.Recipe(learning_rate=1.0, warmup_steps=0), train_seconds=10.0)
    schedule.update(2.0)
    schedule.update(0.5)
    assert schedule.planned_steps == 2 + round(7.5 / 0.5), "the first step, which pays one-off costs, is left out"
    with pytest.raises(h.InputError, match="--warmup_steps"):
        h.Schedule(h.Recipe(warmup_steps=50), train_seconds=1.0).update(0.5)


def test_train_seconds_stops_on_time_and_the_cosine_spans_the_run(corpus):
    h.seed_everything(0)
    model = h.LSTMSeqModel(50257, embed_size=8, hidden_size=8)
    history = h.train_model(model, corpus, h.TrainingRun(h.Budget(train_seconds=1.5), batch_size=4), progress=False)
    assert 1.5 <= history["elapsed_s"].iloc[-1] < 1.5 + 3 * history["elapsed_s"].diff().median() + 0.5
    peak = history["learning_rate"].max()
    assert history["learning_rate"].iloc[-1] < 0.3 * peak, "the schedule must have decayed by the end"


def test_adamw_decays_matrices_only():
    model = h.TransformerModel(vocab_size=60, d_model=16, n_heads=2, n_blocks=1, d_ff=32)
    decayed, kept = h.make_optimizer(model, h.Recipe(weight_decay=0.1)).param_groups
    assert decayed["weight_decay"] == 0.1 and kept["weight_decay"] == 0.0
    assert all(p.dim() >= 2 for p in decayed["params"]) and all(p.dim() < 2 for p in kept["params"])
    assert len(decayed["params"]) + len(kept["params"]) == len(list(model.parameters()))


def test_gradient_clipping_bounds_the_gradient_norm(corpus):
    def gradient_norm_after_one_step(grad_clip):
        h.seed_everything(0)
        model = h.LSTMSeqModel(50257, embed_size=8, hidden_size=8)
        run = h.TrainingRun(h.Budget(max_steps=1), batch_size=4, recipe=h.Recipe(grad_clip=grad_clip))
        h.train_model(model, corpus, run, progress=False)
        return torch.cat([p.grad.flatten() for p in model.parameters()]).norm().item()

    assert gradient_norm_after_one_step(None) > 0.01
    assert gradient_norm_after_one_step(1e-3) == pytest.approx(1e-3, rel=1e-3)


def test_a_run_is_stored_whole_with_its_history_and_checkpoint_and_trains_again_from_that_record(corpus, tmp_path):
    run = h.TrainingRun(h.Budget(max_steps=4), batch_size=4, seed=3, recipe=h.Recipe(learning_rate=1e-2),
                        evaluation=h.Evaluation(every=2), checkpointing=h.Checkpointing(path=tmp_path / "run.pt"))
    h.seed_everything(0)
    model = h.LSTMSeqModel(50257, embed_size=16, hidden_size=16)
    history = h.train_model(model, corpus, run, progress=False)
    record = history.attrs["run"]
    assert record == h.run_record(run) and record["recipe"]["learning_rate"] == 1e-2
    assert record["budget"]["max_steps"] == 4 and record["checkpointing"]["path"] == str(tmp_path / "run.pt")
    assert h.load_checkpoint(tmp_path / "run.pt").checkpoint_metadata["run"] == record
    again = h.TrainingRun.from_record(json.loads(json.dumps(record)))
    assert again == replace(run, checkpointing=h.Checkpointing(path=str(tmp_path / "run.pt")))
    h.seed_everything(0)
    replayed = h.train_model(h.LSTMSeqModel(50257, embed_size=16, hidden_size=16), corpus,
                             replace(again, checkpointing=h.Checkpointing()), progress=False)
    assert replayed["loss"].tolist() == pytest.approx(history["loss"].tolist(), abs=1e-6)
    assert replayed["test_loss"].dropna().tolist() == pytest.approx(history["test_loss"].dropna().tolist(), abs=1e-6)
