"""Packed token streams: what a stream holds, random training windows, the held-out split, the cache, bad input."""

import numpy as np
import pytest
import torch

import picollm_helpers as h
from conftest import ROOT

EOT = 50256


@pytest.fixture
def story_files(tmp_path):
    """Two files of distinct one-line stories, and a third to hold out."""
    for name, start in (("a.txt", 0), ("b.txt", 50)):
        (tmp_path / name).write_text("".join(f"Story number {i} ends here.\n" for i in range(start, start + 50)))
    return tmp_path


def test_a_file_streams_as_its_text_with_one_end_of_text_after_it(enc, story_files):
    corpus = h.build_corpus(enc, 8,
                            h.TrainingText(base_weight=0.0, input_files=[story_files / "a.txt", story_files / "b.txt"]))
    (stream,) = corpus.train_streams()
    assert stream.dtype == np.uint16
    text = enc.decode(stream.tolist())
    expected = "".join(f"Story number {i} ends here.\n" for i in range(50)) + "<|endoftext|>" + \
        "".join(f"Story number {i} ends here.\n" for i in range(50, 100)) + "<|endoftext|>"
    assert text == expected
    assert (stream == EOT).sum() == 2


def test_blank_lines_stay_with_the_line_before(enc, tmp_path):
    (tmp_path / "play.txt").write_text("\n\nHAMLET.\nTo be.\n\n\nOPHELIA.\nMy lord.\n")
    corpus = h.build_corpus(enc, 4, h.TrainingText(base_weight=0.0, input_files=[tmp_path / "play.txt"]))
    assert enc.decode(corpus.train_streams()[0].tolist()) == "\n\nHAMLET.\nTo be.\n\n\nOPHELIA.\nMy lord.\n<|endoftext|>"


def test_stories_end_with_end_of_text(enc, tinystories_dir):
    corpus = h.build_corpus(enc, 16, h.TrainingText(base_corpus="tinystories", base_weight=1.0,
                                                    tinystories_path=tinystories_dir / "sample_small.txt"))
    stories = h.read_tinystories_file(tinystories_dir / "sample_small.txt")
    (stream,) = corpus.train_streams()
    assert (stream == EOT).sum() == len(stories)
    assert enc.decode(stream.tolist()).split("<|endoftext|>")[:-1] == stories


def test_training_windows_are_unpadded_slices_of_the_stream(enc, story_files):
    corpus = h.build_corpus(enc, 12, h.TrainingText(base_weight=0.0, input_files=[story_files / "a.txt"]))
    stream = corpus.train_streams()[0].astype(np.int64)
    tokens, mask = next(corpus.train_batches(batch_size=20, seed=1))
    assert tokens.shape == (13, 20) and mask is None
    windows = np.lib.stride_tricks.sliding_window_view(stream, 13)
    for column in tokens.T.numpy():
        assert (windows == column).all(axis=1).any(), "every window is block_size + 1 consecutive tokens"


def test_training_windows_follow_the_seed(enc, story_files):
    corpus = h.build_corpus(enc, 12, h.TrainingText(base_weight=0.0, input_files=[story_files / "a.txt"]))

    def first_batches(seed):
        batches = corpus.train_batches(4, seed=seed)
        return [next(batches)[0] for _ in range(3)]

    assert all(torch.equal(a, b) for a, b in zip(first_batches(5), first_batches(5)))
    assert not torch.equal(first_batches(5)[0], first_batches(6)[0])


def test_the_base_weight_picks_the_stream_of_each_window(enc, story_files, tinystories_dir):
    corpus = h.build_corpus(enc, 8, h.TrainingText(base_corpus="tinystories", base_weight=0.25,
                                                   tinystories_path=tinystories_dir / "sample_small.txt",
                                                   input_files=[story_files / "a.txt"]))
    story_numbers = set(enc.encode_ordinary(" Story number"))
    tokens, _ = next(corpus.train_batches(4000, seed=0))
    from_files = np.isin(tokens.numpy(), list(story_numbers)).any(axis=0).mean()
    assert abs(from_files - 0.75) < 0.04


def test_heldout_examples_are_whole_lines_left_out_of_training(enc, story_files):
    corpus = h.build_corpus(enc, 8, h.TrainingText(base_weight=0.0, input_files=[story_files / "a.txt"],
                                                   test_fraction=0.3, seed=2))
    train_text = enc.decode(corpus.train_streams()[0].tolist()).replace("<|endoftext|>", "")
    held = enc.decode(corpus.heldout[0].ids.tolist()).replace("<|endoftext|>", "").splitlines()
    assert len(held) == 15
    assert all(line not in train_text for line in held)
    assert len(train_text.splitlines()) + len(held) == 50
    again = h.build_corpus(enc, 8, h.TrainingText(base_weight=0.0, input_files=[story_files / "a.txt"],
                                                  test_fraction=0.3, seed=2))
    assert np.array_equal(again.heldout[0].ids, corpus.heldout[0].ids), "the choice is seeded"


def test_heldout_windows_predict_every_token_once(enc, story_files):
    corpus = h.build_corpus(enc, 7, h.TrainingText(base_weight=0.0, input_files=[story_files / "a.txt"],
                                                   eval_files=[story_files / "b.txt"]))
    stream = corpus.heldout[-1].ids.astype(np.int64)
    batches = list(corpus.heldout_batches(batch_size=5))
    targets = np.concatenate([tokens[1:].T.reshape(-1).numpy() for tokens, _ in batches])
    assert np.array_equal(targets, stream[1:]), "each token after the first is a target exactly once, in order"
    assert all(tokens.shape[0] <= 8 for tokens, _ in batches)


def test_eval_files_are_held_out_whole(enc, story_files):
    corpus = h.build_corpus(enc, 8, h.TrainingText(base_weight=0.0, input_files=[story_files / "a.txt"],
                                                   eval_files=[story_files / "b.txt"]))
    assert enc.decode(corpus.heldout[-1].ids.tolist()).startswith("Story number 50 ends here.\n")
    assert corpus.num_heldout_tokens == len(corpus.heldout[-1])


def test_an_empty_eval_file_is_said_once_and_left_out(enc, story_files, capsys):
    (story_files / "empty.txt").write_text("\n \n")
    corpus = h.build_corpus(enc, 8, h.TrainingText(base_weight=0.0, input_files=[story_files / "a.txt"],
                                                   eval_files=[story_files / "empty.txt"]))
    assert not corpus.has_heldout
    assert capsys.readouterr().err.count("empty.txt holds no text") == 1


def test_an_eval_file_that_is_a_training_file_is_said_once(enc, story_files, capsys):
    h.build_corpus(enc, 8, h.TrainingText(base_weight=0.0, input_files=[story_files / "a.txt"],
                                          eval_files=[story_files / "a.txt", story_files / "b.txt"]))
    err = capsys.readouterr().err
    assert err.count("same text as a training file") == 1 and "a.txt" in err


def test_a_stream_shorter_than_a_window_names_the_source_and_the_block_size_that_fits(enc, tmp_path):
    (tmp_path / "short.txt").write_text("One two three four five.\n")
    with pytest.raises(h.InputError) as error:
        h.build_corpus(enc, 64, h.TrainingText(base_weight=0.0, input_files=[tmp_path / "short.txt"]))
    message = str(error.value)
    assert "short.txt gives 8 training tokens" in message and "--block_size 7 or smaller" in message
    assert h.build_corpus(enc, 7, h.TrainingText(base_weight=0.0, input_files=[tmp_path / "short.txt"])).num_train_tokens == 8


def test_tokenized_text_is_cached_on_disk_and_memory_mapped(enc, story_files, tmp_path, monkeypatch):
    monkeypatch.setenv("PICOLLM_CACHE_DIR", str(tmp_path / "cache"))
    first = h.build_corpus(enc, 8, h.TrainingText(base_weight=0.0, input_files=[story_files / "a.txt"]))
    entries = list((tmp_path / "cache").iterdir())
    assert len(entries) == 1 and not entries[0].name.startswith(".staging")

    class NoEncoding:
        def encode_ordinary_batch(self, texts):
            raise AssertionError("a cached text must not be tokenized again")

    again = h.build_corpus(NoEncoding(), 8, h.TrainingText(base_weight=0.0, input_files=[story_files / "a.txt"]))
    assert isinstance(again.train_streams()[0], np.memmap)
    assert np.array_equal(again.train_streams()[0], first.train_streams()[0])
    (story_files / "a.txt").write_text("Other text entirely, long enough for a window or two.\n")
    h.build_corpus(enc, 8, h.TrainingText(base_weight=0.0, input_files=[story_files / "a.txt"]))
    assert len(list((tmp_path / "cache").iterdir())) == 2, "the key is the text's hash"


def test_packing_off_gives_the_starters_padded_examples(enc):
    corpus = h.build_corpus(enc, 32, h.TrainingText(base_weight=0.0, input_files=["3seqs.txt"]), packing=False)
    assert not corpus.packed and corpus.num_train == 3
    tokens, mask = next(corpus.train_batches(16, seed=0, steps_per_epoch=1))
    assert tokens.shape == (32, 3) and mask is not None


def test_custom_corpus_packs_into_one_stream(enc):
    corpus = h.build_corpus(enc, 64, h.TrainingText(base_weight=0.0, input_dir=ROOT / "data" / "custom_corpus"))
    (stream,) = corpus.train_streams()
    assert (stream == EOT).sum() == 5, "one end-of-text after each of the five files"
    assert corpus.num_train_tokens == len(stream) > 4000


# ---------------------------------------------------------------- GPT-2's own ids, and bits per character

SHARED_PLAYS = sorted((ROOT.parent / "shared" / "data" / "real_text" / "plays").glob("*.txt"))


def gpt2_ids_of_a_file_as_the_bundle_streams_it(enc, path) -> list[int]:
    corpus = h.build_corpus(enc, 2, h.TrainingText(base_weight=0.0, input_files=[path]))
    (stream,) = corpus.train_streams()
    assert stream[-1] == EOT and (stream == EOT).sum() == 1
    return stream[:-1].tolist()


@pytest.mark.parametrize("path", sorted((ROOT / "data").rglob("*.txt")), ids=lambda p: p.name)
def test_the_ids_of_every_bundled_file_are_gpt2s_own(enc, path):
    assert gpt2_ids_of_a_file_as_the_bundle_streams_it(enc, path) == enc.encode_ordinary(path.read_text())


def test_the_ids_of_the_shared_plays_are_gpt2s_own(enc):
    if not SHARED_PLAYS:
        pytest.skip("the shared plays are not beside this checkout")
    for path in SHARED_PLAYS:
        assert gpt2_ids_of_a_file_as_the_bundle_streams_it(enc, path) == enc.encode_ordinary(path.read_text()), path


def test_a_blank_line_before_a_word_is_two_newline_tokens_as_gpt2_has_it(enc, tmp_path):
    """Encoded line by line, "\\n\\n" became one token (628) where GPT-2 has two (198, 198)."""
    (tmp_path / "play.txt").write_text("HAMLET.\nTo be.\n\nOPHELIA.\nMy lord.\n")
    ids = gpt2_ids_of_a_file_as_the_bundle_streams_it(enc, tmp_path / "play.txt")
    assert enc.encode_ordinary("\n\n") == [628] and 628 not in ids and ids.count(198) == 5


def test_heldout_lines_and_training_lines_share_out_the_files_own_ids(enc, story_files):
    text = (story_files / "a.txt").read_text()
    corpus = h.build_corpus(enc, 8, h.TrainingText(base_weight=0.0, input_files=[story_files / "a.txt"],
                                                   test_fraction=0.3, seed=2))
    train, held = corpus.train_streams()[0], corpus.heldout[0].ids
    assert sorted([*train.tolist(), *held.tolist()]) == sorted([*enc.encode_ordinary(text), EOT])


def test_a_heldout_set_counts_the_characters_its_targets_stand_for(enc):
    heldout = h.standard_heldout(enc, 64)
    text = h.HELDOUT_WORK.read_text()
    first = enc.decode([int(heldout.heldout[0].ids[0])])
    assert heldout.heldout_characters == len(text) - len(first)
    assert h.standard_heldout(enc, 64, max_tokens=1000).num_heldout_tokens == 1001


def test_bits_per_character_is_the_loss_over_the_characters_in_bits(enc):
    heldout = h.standard_heldout(enc, 32, max_tokens=2000)
    h.seed_everything(0)
    model = h.build_model("lstm", vocab_size=enc.n_vocab, embed_size=16, hidden_size=16)
    result = h.evaluate(model, heldout)
    assert result.tokens == 2000
    assert result.bits_per_char == pytest.approx(
        result.nats_per_token * result.tokens / np.log(2) / heldout.heldout_characters, rel=1e-9)
    assert 2.5 < heldout.heldout_characters / result.tokens < 5, "English is about four characters a token"
