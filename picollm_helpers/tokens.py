"""Section 4 (part two). Tokens: every document of a source as GPT-2's own ids, cached on disk.

The ids of a document are exactly tiktoken's `encode_ordinary` of its whole text, followed by
`<|endoftext|>` (50256). Whole texts matter: GPT-2 cuts text into pieces with a regular
expression before it merges bytes, and a piece can reach across a line break ("\\n\\n" is one
token at the end of a text but two "\\n" tokens before a word). Encoding a play line by line
gave 31,415 ids where GPT-2 gives 32,286, and a held-out loss that no other tool would
reproduce. tiktoken's batch encoder encodes the documents of a source in parallel.

A held-out choice takes whole *examples*: the lines of a file, or whole stories. A line's
tokens are those that start inside it, found from the byte length of every token (a lookup
and a cumulative sum, no decoding). A line's blank lines stay with it.

Streams are uint16 NumPy arrays (GPT-2's ids fit in 16 bits), cached under
~/.cache/pico-llm/tokens (or $PICOLLM_CACHE_DIR) by a key made of the text's SHA-256, the
tokenizer and CACHE_FORMAT, and memory-mapped when read back.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .sources import TextSource
from .tokenizer import TOKENIZER_NAME, token_cache_dir

END_OF_TEXT = 50256
CACHE_FORMAT = "whole-documents-1"  # in every cache key: a new way of making ids never reads old ones
ASCII_WHITESPACE = np.frombuffer(b" \t\n\r\x0b\x0c", dtype=np.uint8)


@dataclass
class TokenizedSource:
    """A source as one uint16 stream of ids; example i is ids[example_offsets[i]:example_offsets[i + 1]]."""

    name: str
    ids: np.ndarray
    example_offsets: np.ndarray

    def __len__(self) -> int:
        return len(self.example_offsets) - 1

    def lengths(self) -> np.ndarray:
        return np.diff(self.example_offsets)

    def select(self, chosen: np.ndarray) -> np.ndarray:
        """The ids of the chosen examples (a boolean mask over examples), in their order, as one stream.

        Choosing every example returns the (memory-mapped) array itself, not a copy.
        """
        if chosen.all():
            return self.ids
        return np.asarray(self.ids[np.repeat(chosen, self.lengths())])


def cache_key(source: TextSource) -> str:
    digest = hashlib.sha256(f"{CACHE_FORMAT}\x00{TOKENIZER_NAME}\x00{source.lines_are_examples}".encode())
    for document in source.documents:
        digest.update(b"\x00" + document.encode("utf-8"))
    return digest.hexdigest()


@functools.lru_cache(maxsize=4)
def token_byte_lengths(enc) -> np.ndarray:
    """How many bytes of text each id stands for (0 for the special tokens)."""
    special = {enc.encode_single_token(token) for token in enc.special_tokens_set}
    return np.array([0 if i in special else len(enc.decode_single_token_bytes(i)) for i in range(enc.n_vocab)],
                    dtype=np.int64)


def line_starts(text: str) -> np.ndarray:
    """Byte offsets where the examples of a text begin: its non-blank lines (the first at 0, so that
    leading blank lines go with it; later blank lines go with the line before them)."""
    data = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    starts = np.concatenate([[0], np.flatnonzero(data == ord("\n")) + 1])
    starts = starts[starts < len(data)]
    ends = np.append(starts[1:], len(data))
    printable = np.concatenate([[0], np.cumsum(~np.isin(data, ASCII_WHITESPACE))])
    non_blank = starts[printable[ends] > printable[starts]]
    return np.unique(np.append(non_blank[1:], 0))


def example_offsets(ids: list[int], text: str, byte_lengths: np.ndarray) -> np.ndarray:
    """Where each line of a document begins among its ids: the first token starting at or after the line."""
    lengths = byte_lengths[np.asarray(ids, dtype=np.int64)]
    token_starts = np.cumsum(lengths) - lengths
    return np.unique(np.searchsorted(token_starts, line_starts(text)))


def tokenize_source(enc, source: TextSource) -> TokenizedSource:
    """Every document of a source as GPT-2's ids, `<|endoftext|>` after each, with its examples' offsets.

    Cached on disk by content, so a rerun on the same text reads it back (memory-mapped)
    instead of tokenizing again.
    """
    folder = token_cache_dir() / cache_key(source)
    if (folder / "ids.npy").is_file():
        return TokenizedSource(source.name, np.load(folder / "ids.npy", mmap_mode="r"),
                               np.load(folder / "offsets.npy"))
    encoded = enc.encode_ordinary_batch(source.documents)
    lengths = np.array([len(ids) + 1 for ids in encoded], dtype=np.int64)
    document_starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    if source.lines_are_examples:
        byte_lengths = token_byte_lengths(enc)
        starts = [start + example_offsets(ids, text, byte_lengths)
                  for start, ids, text in zip(document_starts, encoded, source.documents)]
    else:
        starts = [document_starts]
    offsets = np.append(np.concatenate(starts), lengths.sum()).astype(np.int64)
    ids = np.concatenate([np.asarray([*ids, END_OF_TEXT], dtype=np.uint16) for ids in encoded])
    store_in_cache(folder, ids, offsets)
    return TokenizedSource(source.name, ids, offsets)


def store_in_cache(folder: Path, ids: np.ndarray, offsets: np.ndarray) -> None:
    """Write both arrays to a temporary folder, then rename it into place: never half a cache entry."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".staging-"))
    np.save(staging / "offsets.npy", offsets)
    np.save(staging / "ids.npy", ids)
    try:
        os.replace(staging, folder)
    except OSError:  # another run cached the same text meanwhile
        shutil.rmtree(staging, ignore_errors=True)


def count_characters(enc, ids) -> int:
    """How many characters of text some ids stand for (`<|endoftext|>` marks none): what bits per
    character divide by."""
    ids = np.asarray(ids, dtype=np.int64)
    return len(enc.decode(ids[ids != END_OF_TEXT].tolist()))
