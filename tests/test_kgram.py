"""The k-gram MLP: the fast onehot design equals the literal loop, every design behaves, and it is fast."""

import statistics

import pytest
import torch
import torch.nn.functional as F

import picollm_helpers as h


def literal_onehot_logits(model: h.KGramMLPSeqModel, tokens: torch.Tensor) -> torch.Tensor:
    """The oracle: for each position and batch item, build the k*|V| one-hot input by hand and run the MLP."""
    seq_len, batch = tokens.shape
    k, vocab = model.k, model.vocab_size
    dense_first_layer = model.onehot_layer.weight.T  # (d, k*|V|), as the starter's nn.Linear held it
    out = torch.zeros(seq_len, batch, vocab)
    for t in range(seq_len):
        for b in range(batch):
            x = torch.zeros(k * vocab)
            for slot in range(k):
                position = t - (k - 1) + slot  # the window t-k+1 .. t, zero-padded before the start
                token = int(tokens[position, b]) if position >= 0 else 0
                x[slot * vocab + token] = 1.0
            out[t, b] = model.lm_head(model.mlp(F.linear(x, dense_first_layer, model.onehot_bias)))
    return out


@pytest.mark.parametrize("k, chunk_size", [(1, 1), (2, 3), (3, 1024), (5, 2)])
@torch.no_grad()
def test_fast_onehot_equals_the_literal_loop(k, chunk_size):
    torch.manual_seed(k)
    model = h.KGramMLPSeqModel(97, k=k, embed_size=16, num_inner_layers=2, chunk_size=chunk_size, variant="onehot")
    for parameter in model.parameters():  # random weights everywhere, the biases too
        torch.nn.init.normal_(parameter, std=0.5)
    tokens = torch.randint(0, 97, (9, 4))  # 9 positions: several with t < k
    expected = literal_onehot_logits(model, tokens)
    assert (model(tokens) - expected).abs().max().item() <= 1e-5
    assert (h.kgram_starter_loop_logits(model, tokens) - expected).abs().max().item() <= 1e-5


def test_window_ends_at_the_current_token_and_pads_with_zeros():
    tokens = torch.tensor([[5], [6], [7]])
    assert h.kgram_windows(tokens, 3)[:, 0].tolist() == [[0, 0, 5], [0, 5, 6], [5, 6, 7]]
    assert h.kgram_windows(tokens, 2, include_current=False)[:, 0].tolist() == [[0, 0], [0, 5], [5, 6]]


@pytest.mark.parametrize("variant", h.KGramMLPSeqModel.VARIANTS)
def test_each_design_sees_only_its_window(variant):
    torch.manual_seed(0)
    model = h.KGramMLPSeqModel(50, k=2, embed_size=8, variant=variant)
    tokens = torch.randint(0, 50, (8, 3))
    changed = tokens.clone()
    changed[2, 1] = (tokens[2, 1] + 1) % 50
    moved = (model(changed) - model(tokens)).abs().amax(dim=-1) > 0
    assert moved[:, 1].tolist() == [False, False, True, True, False, False, False, False]
    assert not moved[:, [0, 2]].any(), "batch items must not see each other"


@pytest.mark.parametrize("variant", h.KGramMLPSeqModel.VARIANTS)
def test_chunking_does_not_change_the_logits(variant):
    torch.manual_seed(1)
    whole = h.KGramMLPSeqModel(60, k=3, embed_size=8, variant=variant, chunk_size=1024)
    chunked = h.KGramMLPSeqModel(60, k=3, embed_size=8, variant=variant, chunk_size=2)
    chunked.load_state_dict(whole.state_dict())
    tokens = torch.randint(0, 60, (11, 2))
    torch.testing.assert_close(chunked(tokens), whole(tokens))


@pytest.mark.parametrize("variant", h.KGramMLPSeqModel.VARIANTS)
def test_initial_loss_is_near_ln_vocab(variant):
    torch.manual_seed(0)
    model = h.KGramMLPSeqModel(50257, k=2, embed_size=32, variant=variant)
    tokens = torch.randint(0, 50257, (16, 2))
    assert abs(h.compute_next_token_loss(model(tokens), tokens).item() - 10.825) < 0.5


@pytest.mark.parametrize("arguments, message", [
    (dict(k=0), "k=0"), (dict(embed_size=0), "embed_size=0"), (dict(chunk_size=0), "chunk_size=0"),
    (dict(variant="rnn"), "variant='rnn'"),
])
def test_bad_sizes_fail_clearly(arguments, message):
    with pytest.raises(ValueError, match=message):
        h.KGramMLPSeqModel(50, **arguments)


def test_token_ids_outside_the_vocabulary_fail_clearly():
    model = h.KGramMLPSeqModel(50, k=2, embed_size=4, variant="onehot")
    with pytest.raises(ValueError, match=r"\[0, 50\)"):
        model(torch.tensor([[3], [50]]))
    with pytest.raises(ValueError, match=r"\[0, 50\)"):
        model(torch.tensor([[-1], [2]]))


NOTES_CONFIGURATION = dict(vocab_size=50257, k=2, embed_size=64, num_inner_layers=2, variant="onehot")


@pytest.fixture(scope="module")
def notes_corpus(enc):
    return h.build_corpus(enc, 32, h.TrainingText(base_weight=0.0, input_files=["3seqs.txt"], seed=0), packing=False)


def time_the_starter_loop(notes_corpus) -> float:
    """The starter's per-position loop on the notes' configuration, timed over two batches, as the starter
    runs: in a process of its own, glibc's allocator at its defaults. It visits one window at a time, so its
    tokens/s do not depend on the batch: batches of 8 windows measure it in a quarter of the time of 32."""
    torch.set_num_threads(2)
    h.seed_everything(0)
    batches = h.starter_loop_batches(notes_corpus, batches=2, batch_size=8, seed=0)
    timed = h.time_starter_loop_as_the_starter_runs(h.KGramMLPSeqModel(**NOTES_CONFIGURATION), batches)
    return timed["tokens_per_s"]


def time_the_fast_path(notes_corpus, chunk_size: int, distinct_windows: bool = True) -> float:
    """Tokens/s of the training step users get (train_model) on the notes' configuration: the median step
    after the first, warm-up one. distinct_windows=False computes every position's window, as the loop does."""
    torch.set_num_threads(2)
    h.seed_everything(0)
    model = h.KGramMLPSeqModel(**NOTES_CONFIGURATION, chunk_size=chunk_size, distinct_windows=distinct_windows)
    run = h.TrainingRun(h.Budget(max_steps=8), batch_size=32, recipe=h.STARTER_RECIPE)
    history = h.train_model(model, notes_corpus, run, progress=False)
    return statistics.median(history["tokens_per_s"].iloc[1:])


@pytest.fixture(scope="module")
def starter_loop(notes_corpus) -> float:
    """The loop's tokens/s, timed once for both chunk sizes' first measurement."""
    return time_the_starter_loop(notes_corpus)


def test_the_loop_in_a_process_of_its_own_trains_the_same_model_on_the_same_batches(notes_corpus):
    torch.set_num_threads(2)
    h.seed_everything(0)
    model = h.KGramMLPSeqModel(**{**NOTES_CONFIGURATION, "embed_size": 8, "num_inner_layers": 1})
    batches = h.starter_loop_batches(notes_corpus, batches=2, batch_size=2, seed=0)
    there = h.time_starter_loop_as_the_starter_runs(model, batches)
    here = h.time_starter_loop(model, batches)
    assert there["tokens"] == here["tokens"] == 2 * 2 * 31
    assert len(here["losses"]) == 2 and there["losses"] == pytest.approx(here["losses"], abs=1e-6)


def test_the_allocator_setting_can_be_left_at_glibcs_defaults(monkeypatch):
    monkeypatch.setenv("PICOLLM_KEEP_FREED_MEMORY", "0")
    assert h.keep_freed_memory_for_reuse() is False


@pytest.mark.parametrize("chunk_size", [1024, 8])
def test_fast_onehot_trains_at_least_35_times_faster_than_the_loop(notes_corpus, starter_loop, chunk_size):
    """The notes' configuration: k = 2, embedding 64, two inner layers, Adam 1e-3, batch 32, 3seqs.txt,
    through the training step users get (each distinct window computed once), at the default chunk size and
    at 8, against the starter's loop as the starter runs. Another program on the machine can only slow a
    measurement down, and it slows the fast path's two threads more than the loop's one; so, as timeit takes the
    best of its repeats, a measurement that falls short is made again, the loop and the fast path back to back,
    up to three times in all."""
    measured = [(time_the_fast_path(notes_corpus, chunk_size), starter_loop)]
    while measured[-1][0] < 35 * measured[-1][1] and len(measured) < 3:
        measured.append((time_the_fast_path(notes_corpus, chunk_size), time_the_starter_loop(notes_corpus)))
    assert any(fast >= 35 * loop for fast, loop in measured), \
        "; ".join(f"fast {fast:.0f} tokens/s, loop {loop:.0f} ({fast / loop:.1f}x)" for fast, loop in measured)


def test_vectorising_alone_trains_at_least_20_times_faster_than_the_loop(notes_corpus, starter_loop):
    """The same, computing every position's window as the loop does (distinct_windows=False): what vectorising
    the loop gains by itself, with the full-vocabulary softmax, not the k-gram, limiting it. The notes' batches
    repeat three lines, so most of the training step's speed-up above comes from their repeated windows; this
    keeps the vectorised arithmetic itself to its own floor."""
    fast = time_the_fast_path(notes_corpus, 1024, distinct_windows=False)
    assert fast >= 20 * starter_loop, f"fast {fast:.0f} tokens/s, loop {starter_loop:.0f} ({fast / starter_loop:.1f}x)"
