"""Every data source, the batching conventions, and every kind of bad input."""

import hashlib
import random
import re

import pandas as pd
import pytest
import torch

import picollm_helpers as h
from conftest import ROOT


def test_bare_name_resolves_against_data_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert h.resolve_data_path("3seqs.txt") == ROOT / "data" / "3seqs.txt"


def test_three_sequences_one_a_line():
    assert len(h.read_examples("3seqs.txt")) == 3


def test_custom_corpus_has_five_files_and_enough_unique_lines():
    names = {p.name for p in h.find_text_files(ROOT / "data" / "custom_corpus")}
    assert names == {"field_notes.txt", "mini_stories.txt", "observatory_journal.txt", "city_archive.txt",
                     "harbor_diary.txt"}
    lines = h.load_custom_examples(input_dir=ROOT / "data" / "custom_corpus")
    assert len(set(lines)) >= 182
    assert all(line.isascii() for line in lines)


def test_input_dir_is_recursive_and_sorted(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "two.txt").write_text("second\n")
    (tmp_path / "a.txt").write_text("first\n\n  \n")
    (tmp_path / "ignored.md").write_text("not text\n")
    assert h.load_custom_examples(input_dir=tmp_path) == ["first", "second"]


def test_limit_custom_examples(tmp_path):
    (tmp_path / "a.txt").write_text("\n".join(f"line {i}" for i in range(10)))
    assert h.load_custom_examples([tmp_path / "a.txt"], limit=4) == [f"line {i}" for i in range(4)]
    with pytest.raises(h.InputError, match="limit_custom_examples"):
        h.load_custom_examples([tmp_path / "a.txt"], limit=0)


def test_bad_input_files(tmp_path):
    (tmp_path / "empty.txt").write_text("\n  \n")
    cases = {tmp_path / "missing.txt": "not found", tmp_path / "empty.txt": "holds no text", tmp_path: "is a folder"}
    for path, match in cases.items():
        with pytest.raises(h.InputError, match=match) as error:
            h.load_custom_examples([path])
        assert str(path) in str(error.value)


def test_bad_input_dirs(tmp_path):
    with pytest.raises(h.InputError, match="not found"):
        h.load_custom_examples(input_dir=tmp_path / "nowhere")
    with pytest.raises(h.InputError, match="contains no .txt files"):
        h.load_custom_examples(input_dir=tmp_path)
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(h.InputError, match="is a file"):
        h.load_custom_examples(input_dir=tmp_path / "a.txt")


def test_empty_file_in_a_folder_is_skipped_with_a_warning(tmp_path, capsys):
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "full.txt").write_text("a story\n")
    assert h.load_custom_examples(input_dir=tmp_path) == ["a story"]
    assert "empty.txt" in capsys.readouterr().err


def test_bytes_that_are_not_utf8_warn_with_file_and_line_then_go_on(tmp_path, capsys):
    path = tmp_path / "mixed.txt"
    path.write_bytes(b"good line\n\xff\xfe bad line\nanother good line\n")
    assert h.read_examples(path) == ["good line", "another good line"]
    err = capsys.readouterr().err
    assert f"{path} line 2 is not valid UTF-8" in err


@pytest.mark.parametrize("packing", [True, False])
def test_block_size_under_two_is_refused(enc, packing):
    with pytest.raises(h.InputError, match="block_size=1"):
        h.build_corpus(enc, 1, h.TrainingText(base_weight=0.0, input_files=["3seqs.txt"]), packing=packing)


@pytest.mark.parametrize("packing", [True, False])
def test_no_text_at_all_is_refused(enc, packing):
    with pytest.raises(h.InputError, match="No training text: --base_weight 0"):
        h.build_corpus(enc, 32, h.TrainingText(base_weight=0.0), packing=packing)


def test_offline_tinystories_says_so_in_one_line_and_trains_on_the_plays(enc, capsys, monkeypatch):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    assert h.tinystories_source(5) is None
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("TinyStories skipped: HF_HUB_OFFLINE=1")
    corpus = h.build_corpus(enc, 32, h.TrainingText(base_corpus="tinystories", tinystories_stories=5))
    assert [stream.name for stream in corpus.train] == ["the plays"]
    assert "Training on the bundled plays instead" in capsys.readouterr().err


def test_unreachable_hub_is_detected_fast(monkeypatch):
    import time

    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", "https://hub.invalid")
    started = time.perf_counter()
    assert "unreachable" in h.hub_unreachable_reason(timeout_s=2.0)
    assert time.perf_counter() - started < 5


def test_streaming_takes_only_the_stories_asked_for(monkeypatch):
    """The hub path, with the network call replaced by an endless stream of rows."""
    import itertools

    import datasets

    calls = {}

    def fake_load_dataset(name, split, streaming):
        calls.update(name=name, split=split, streaming=streaming)
        return ({"text": f"story {i}"} for i in itertools.count())

    monkeypatch.setattr(h.sources, "hub_unreachable_reason", lambda: None)
    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    assert h.stream_tinystories(3) == (["story 0", "story 1", "story 2"], None)
    assert calls == {"name": "roneneldan/TinyStories", "split": "train", "streaming": True}


def test_tinystories_txt_with_separators(tinystories_dir):
    stories = h.read_tinystories_file(tinystories_dir / "sample_small.txt")
    assert len(stories) >= 3
    assert all("<|endoftext|>" not in s for s in stories)
    assert stories[0].startswith("Once upon a time there was a little boy named Ben.")
    assert "\n" in stories[0], "a story keeps its own line breaks"


def test_tinystories_txt_one_story_per_line_crlf(tinystories_dir):
    stories = h.read_tinystories_file(tinystories_dir / "valid_subset.txt")
    raw_lines = [l for l in (tinystories_dir / "valid_subset.txt").read_bytes().split(b"\n") if l.strip()]
    assert len(stories) == len(raw_lines)
    assert not any("\r" in s for s in stories)
    assert h.read_tinystories_file(tinystories_dir / "valid_subset.txt", num_stories=4) == stories[:4]


def test_tinystories_jsonl_and_parquet(tmp_path):
    table = pd.DataFrame({"text": ["One day, a cat sat.", "The end came.", ""]})
    table.to_json(tmp_path / "s.jsonl", orient="records", lines=True)
    table.to_parquet(tmp_path / "s.parquet")
    for name in ("s.jsonl", "s.parquet"):
        assert h.read_tinystories_file(tmp_path / name) == ["One day, a cat sat.", "The end came."]
    pd.DataFrame({"story": ["x"]}).to_json(tmp_path / "bad.jsonl", orient="records", lines=True)
    with pytest.raises(h.InputError, match="no 'text' field"):
        h.read_tinystories_file(tmp_path / "bad.jsonl")
    (tmp_path / "s.csv").write_text("text\nx\n")
    with pytest.raises(h.InputError, match=".txt, .jsonl or .parquet"):
        h.read_tinystories_file(tmp_path / "s.csv")


def test_tokenize_truncates_and_drops_too_short(enc):
    seqs = h.tokenize(["one two three four five six", "hi", "a b"], enc, block_size=4)
    assert [len(s) for s in seqs] == [4, 2]


def test_collate_pads_to_seq_len_by_batch_with_a_mask():
    tokens, mask = h.seq_collate_fn([torch.tensor([5, 6, 7]), torch.tensor([8])])
    assert tokens.shape == (3, 2) and mask.shape == (3, 2)
    assert tokens[:, 0].tolist() == [5, 6, 7] and tokens[:, 1].tolist() == [8, 0, 0]
    assert mask[:, 1].tolist() == [True, False, False]


def test_mixed_dataset_respects_the_weight():
    random.seed(0)
    dataset = h.MixedSequenceDataset([[1, 1]], [[2, 2]], base_weight=0.25)
    draws = [int(dataset[i][0]) for i in range(4000)]
    assert abs(draws.count(1) / len(draws) - 0.25) < 0.03
    only_other = h.MixedSequenceDataset([], [[2, 2]], base_weight=0.9)
    assert {int(only_other[i][0]) for i in range(50)} == {2}


def test_split_is_seeded_disjoint_and_complete():
    seqs = [[i, i] for i in range(20)]
    train, test = h.split_train_test(seqs, 0.4, seed=7)
    assert len(test) == 8 and len(train) == 12
    assert sorted(train + test) == seqs
    assert h.split_train_test(seqs, 0.4, seed=7) == (train, test)
    assert h.split_train_test(seqs, 0.4, seed=8) != (train, test)
    with pytest.raises(h.InputError, match="test_fraction"):
        h.split_train_test(seqs, 1.0, seed=0)


def test_per_example_batches_are_deterministic(enc):
    corpus = h.build_corpus(enc, 16, h.TrainingText(base_weight=0.0, input_dir=ROOT / "data" / "custom_corpus",
                                                    test_fraction=0.2, seed=3), packing=False)
    assert corpus.num_test > 0

    def first_batches():
        h.seed_everything(3)
        batches = corpus.train_batches(8, seed=3)
        return [next(batches)[0] for _ in range(3)]

    assert all(torch.equal(a, b) for a, b in zip(first_batches(), first_batches()))
    tokens, mask = next(corpus.heldout_batches(4))
    assert tokens.shape[1] == 4 and tokens.shape[0] <= 16 and mask.shape == tokens.shape


def test_local_tinystories_mix_with_custom(enc, tinystories_dir):
    corpus = h.build_corpus(enc, 64, h.TrainingText(base_corpus="tinystories", base_weight=0.5,
                                                    tinystories_path=tinystories_dir / "sample_small.txt",
                                                    input_files=["3seqs.txt"]), packing=False)
    assert corpus.train_base and corpus.train_own and corpus.base_weight == 0.5
    packed = h.build_corpus(enc, 64, h.TrainingText(base_corpus="tinystories", base_weight=0.5,
                                                    tinystories_path=tinystories_dir / "sample_small.txt",
                                                    input_files=["3seqs.txt"]))
    assert [stream.name for stream in packed.train] == ["TinyStories", "3seqs.txt"]


# ---------------------------------------------------------------- the base corpus


def test_the_plays_ship_with_their_checksums():
    plays = ROOT / "data" / "plays"
    table = dict(re.findall(r"\| `([a-z0-9_]+\.txt)` \|[^|]+\|[^|]+\| `([0-9a-f]{64})` \|",
                            (plays / "README.md").read_text(encoding="utf-8")))
    files = sorted(path.name for path in plays.glob("*.txt"))
    assert len(files) == 27 and sorted(table) == files
    for name, digest in table.items():
        assert hashlib.sha256((plays / name).read_bytes()).hexdigest() == digest, name


def test_no_run_trains_on_the_heldout_works(enc):
    names = {path.name for path in h.play_files()}
    assert len(names) == 25 and not names & {work.name for work in h.HELDOUT_WORKS}
    training_text = enc.decode(h.build_corpus(enc, 64).train_streams()[0].tolist())
    assert "LEONTES" in h.read_text_file(h.HELDOUT_WORK) and "LEONTES" not in training_text
    assert "CRANMER" in h.read_text_file(h.SECOND_HELDOUT_WORK) and "CRANMER" not in training_text


def test_the_base_corpus_is_the_plays_unless_asked_and_zero_weight_trains_on_your_text_alone(enc, tmp_path):
    (tmp_path / "mine.txt").write_text("".join(f"My line {i} is here.\n" for i in range(40)))
    mixed = h.build_corpus(enc, 16, h.TrainingText(input_files=[tmp_path / "mine.txt"]))
    assert [stream.name for stream in mixed.train] == ["the plays", str(tmp_path / "mine.txt")]
    assert mixed.weights.tolist() == [0.5, 0.5]
    alone = h.build_corpus(enc, 16, h.TrainingText(base_weight=0.0, input_files=[tmp_path / "mine.txt"]))
    assert [stream.name for stream in alone.train] == [str(tmp_path / "mine.txt")]
    with pytest.raises(h.InputError, match="--base_corpus 'wikipedia'"):
        h.build_corpus(enc, 16, h.TrainingText(base_corpus="wikipedia"))


def test_every_artefact_names_the_base_corpus_and_its_hash(tmp_path):
    path = h.write_artefact("probe", preset="quick", config={}, results={}, device="cpu", folder=tmp_path)
    record = h.read_artefact(path)["base_corpus"]
    assert record["name"] == "plays" and record["works"] == 25 and len(record["sha256"]) == 64
    assert record["heldout_work"] == "winters_tale.txt"
