"""Section 4 (continued). Packed token streams: every position a target, nothing padding.

Each source becomes one stream of GPT-2 ids with `<|endoftext|>` (50256) after each document:

  TinyStories   a document is a story.
  text files    a document is a file; its examples are its lines, each kept with its newline
                (and the blank lines after it), so the stream reads like the file itself.

Why a file's lines keep their newline instead of each ending with `<|endoftext|>`: in a file
of one example a line (3seqs.txt, the custom corpus) the newline already ends the example,
and in prose or a play a line is not an example at all. Ending every verse line as if it
ended a document would make a model drop its context every ten tokens, and its samples would
be strewn with end-of-text marks.

A training item is a random window of block_size + 1 tokens of a stream: the model reads the
first block_size tokens and predicts the last block_size, so every position is a target. The
TinyStories weight picks the stream of each window. The held-out part is a seeded choice of
whole examples (lines or stories), which are taken out of the training stream, and any files
given with `eval_files`; it is evaluated on consecutive non-overlapping windows, so every
held-out token is predicted exactly once.

Streams are uint16 NumPy arrays (GPT-2's ids fit in 16 bits). A text is tokenized once, with
tiktoken's batch encoder: its ids are cached on disk under a key made of the text's SHA-256
and the tokenizer's name, and memory-mapped when read back.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .data import (InputError, build_example_corpus, check_block_size, find_text_files, load_custom_documents,
                   load_tinystories, note, read_lines_with_breaks, resolve_data_path, shuffled_split)
from .tokenizer import TOKENIZER_NAME

END_OF_TEXT = 50256
CACHE_ENV_VAR = "PICOLLM_CACHE_DIR"


# ---------------------------------------------------------------- tokenizing, cached


def token_cache_dir() -> Path:
    """Where tokenized texts are kept: $PICOLLM_CACHE_DIR, else ~/.cache/pico-llm/tokens."""
    return Path(os.environ.get(CACHE_ENV_VAR) or Path.home() / ".cache" / "pico-llm" / "tokens")


@dataclass
class TokenizedExamples:
    """Examples as one uint16 array of ids; example i is ids[offsets[i]:offsets[i + 1]]."""

    ids: np.ndarray
    offsets: np.ndarray

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def select(self, chosen: np.ndarray) -> np.ndarray:
        """The ids of the chosen examples (a boolean mask over examples), in their order, as one stream.

        Choosing every example returns the (memory-mapped) array itself, not a copy.
        """
        if chosen.all():
            return self.ids
        return np.asarray(self.ids[np.repeat(chosen, self.lengths())])


def cache_key(texts: list[str], ends_document: list[bool]) -> str:
    digest = hashlib.sha256(TOKENIZER_NAME.encode())
    for text, end in zip(texts, ends_document):
        digest.update(b"\x00" + text.encode("utf-8") + (b"\x01" if end else b"\x02"))
    return digest.hexdigest()


def tokenize_examples(enc, texts: list[str], ends_document: list[bool]) -> TokenizedExamples:
    """Tokenize examples with tiktoken's batch encoder, `<|endoftext|>` after each that ends a document.

    The result is cached on disk by content, so a rerun on the same text reads it back
    (memory-mapped) instead of tokenizing again.
    """
    folder = token_cache_dir() / cache_key(texts, ends_document)
    if (folder / "ids.npy").is_file():
        return TokenizedExamples(np.load(folder / "ids.npy", mmap_mode="r"), np.load(folder / "offsets.npy"))
    encoded = enc.encode_ordinary_batch(texts)
    for ids, end in zip(encoded, ends_document):
        if end:
            ids.append(END_OF_TEXT)
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(ids) for ids in encoded], out=offsets[1:])
    ids = np.concatenate([np.asarray(example, dtype=np.uint16) for example in encoded])
    store_in_cache(folder, ids, offsets)
    return TokenizedExamples(ids, offsets)


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


# ---------------------------------------------------------------- sources as examples


@dataclass
class Source:
    """One source's examples, tokenized, and the name messages give it."""

    name: str
    examples: TokenizedExamples


def tinystories_source(enc, stories: list[str]) -> Source:
    return Source("TinyStories", tokenize_examples(enc, stories, [True] * len(stories)))


def text_files_source(enc, name: str, documents: list[list[str]]) -> Source:
    """Files as examples: every line, `<|endoftext|>` after each file's last line."""
    texts = [line for lines in documents for line in lines]
    ends = [index == len(lines) - 1 for lines in documents for index in range(len(lines))]
    return Source(name, tokenize_examples(enc, texts, ends))


def files_name(input_files=(), input_dir=None) -> str:
    return ", ".join([*(str(path) for path in input_files or ()), *([str(input_dir)] if input_dir else [])])


def heldout_choice(num_examples: int, test_fraction: float, seed: int) -> np.ndarray:
    """A seeded choice of whole examples to hold out, as a boolean mask (the per-example path's split)."""
    chosen = np.zeros(num_examples, dtype=bool)
    chosen[shuffled_split(num_examples, test_fraction, seed)[1]] = True
    return chosen


# ---------------------------------------------------------------- streams and windows


@dataclass
class TokenStream:
    """A stream of ids (uint16) and the name of what it came from."""

    name: str
    ids: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)


def check_stream_fits(stream: TokenStream, block_size: int) -> None:
    if len(stream) < block_size + 1:
        raise InputError(
            f"{stream.name} gives {len(stream):,} training tokens, fewer than block_size + 1 = {block_size + 1:,}: "
            f"use --block_size {max(len(stream) - 1, 2)} or smaller, or give more text.")


def random_windows(streams: list[TokenStream], choice: np.ndarray, block_size: int,
                   generator: torch.Generator) -> torch.Tensor:
    """One random window of block_size + 1 tokens per batch item, each from the stream `choice` names for it:
    (block_size + 1, batch)."""
    windows = np.empty((block_size + 1, len(choice)), dtype=np.int64)
    positions = np.arange(block_size + 1)[:, None]
    for index, stream in enumerate(streams):
        columns = np.flatnonzero(choice == index)
        if len(columns):
            starts = torch.randint(0, len(stream) - block_size, (len(columns),), generator=generator).numpy()
            windows[:, columns] = stream.ids[positions + starts]
    return torch.from_numpy(windows)


def consecutive_windows(ids: np.ndarray, block_size: int) -> tuple[np.ndarray, np.ndarray | None]:
    """A stream cut into windows of block_size + 1 that overlap by one token: every token after the
    first is a target exactly once. Full windows (n, block_size + 1), and the shorter last one if any."""
    full = (len(ids) - 1) // block_size
    starts = np.arange(full)[:, None] * block_size
    windows = np.asarray(ids[starts + np.arange(block_size + 1)], dtype=np.int64)
    rest = np.asarray(ids[full * block_size:], dtype=np.int64)
    return windows, rest if len(rest) >= 2 else None


class PackedCorpus:
    """Training streams (TinyStories and the student's text) and held-out streams, for one block size."""

    packed = True

    def __init__(self, train: list[TokenStream], weights: list[float], heldout: list[TokenStream], block_size: int):
        check_block_size(block_size)
        for stream in train:
            check_stream_fits(stream, block_size)
        self.train, self.heldout, self.block_size = train, heldout, block_size
        self.weights = torch.tensor(weights, dtype=torch.float64) / sum(weights)

    @property
    def num_train_tokens(self) -> int:
        return sum(len(stream) for stream in self.train)

    @property
    def num_heldout_tokens(self) -> int:
        return sum(len(stream) for stream in self.heldout)

    @property
    def has_heldout(self) -> bool:
        return self.num_heldout_tokens >= 2

    def train_streams(self) -> list[np.ndarray]:
        return [stream.ids for stream in self.train]

    def train_batches(self, batch_size: int, seed: int = 0):
        """Endless batches of random windows, (block_size + 1, batch) with no padding (mask None)."""
        if batch_size < 1:
            raise InputError(f"batch_size={batch_size}: give at least 1.")
        generator = torch.Generator().manual_seed(seed)
        while True:
            choice = torch.multinomial(self.weights, batch_size, replacement=True, generator=generator).numpy()
            yield random_windows(self.train, choice, self.block_size, generator), None

    def heldout_batches(self, batch_size: int):
        """Every held-out window once, in order, as (tokens, None): no padding, so no mask.

        A stream's shorter last window comes as a batch of its own.
        """
        for stream in self.heldout:
            windows, rest = consecutive_windows(stream.ids, self.block_size)
            for start in range(0, len(windows), batch_size):
                yield torch.from_numpy(windows[start:start + batch_size].T.copy()), None
            if rest is not None:
                yield torch.from_numpy(rest).view(-1, 1), None


# ---------------------------------------------------------------- building a corpus


def build_packed_corpus(enc, block_size: int, *, tinystories_weight: float = 0.5, tinystories_stories: int = 20_000,
                        tinystories_path=None, input_files=(), input_dir=None, limit_custom_examples=None,
                        test_fraction: float = 0.0, seed: int = 0, eval_files=()) -> PackedCorpus:
    """Every source asked for as a packed stream, with a seeded held-out choice of whole examples
    from each source, and the eval files held out whole."""
    check_block_size(block_size)
    if not 0.0 <= tinystories_weight <= 1.0:
        raise InputError(f"tinystories_weight={tinystories_weight} must lie in [0, 1]: 0 skips TinyStories.")
    sources = []  # (source, weight of its windows in training)
    stories = load_tinystories(tinystories_stories, tinystories_path) if tinystories_weight > 0 else []
    if stories:
        sources.append((tinystories_source(enc, stories), tinystories_weight))
    documents = load_custom_documents(input_files, input_dir, limit_custom_examples)
    if documents:
        sources.append((text_files_source(enc, files_name(input_files, input_dir), documents),
                        1.0 - tinystories_weight if stories else 1.0))
    if not sources:
        raise InputError(
            "No training text: TinyStories gave no stories and no --input_files or --input_dir lines were "
            "given. Pass --input_files 3seqs.txt (bundled) or --input_dir data/custom_corpus.")
    train, weights, heldout = [], [], []
    for source, weight in sources:
        chosen = heldout_choice(len(source.examples), test_fraction, seed)
        if weight > 0:
            train.append(TokenStream(source.name, source.examples.select(~chosen)))
            weights.append(weight)
        heldout.append(TokenStream(f"{source.name} (held out)", source.examples.select(chosen)))
    training_files = [*map(resolve_data_path, input_files or ()), *(find_text_files(input_dir) if input_dir else [])]
    return PackedCorpus(train, weights, heldout + eval_streams(enc, eval_files, training_files), block_size)


def eval_streams(enc, eval_files, training_files=()) -> list[TokenStream]:
    """Each --eval_files file as a held-out stream, whole. An empty one, or one with the same text as a
    training file, says so once (the first adds nothing; the second's loss is not held out)."""
    trained_on = {file_digest(path) for path in training_files}
    streams = []
    for path in map(resolve_data_path, eval_files or ()):
        lines = read_lines_with_breaks(path, allow_empty=True)
        if not lines:
            note(f"{path} holds no text: it adds nothing to the held-out loss.")
            continue
        if file_digest(path) in trained_on:
            note(f"{path} has the same text as a training file: its loss is not a held-out loss.")
        streams.append(TokenStream(str(path), text_files_source(enc, str(path), [lines]).examples.ids))
    return streams


def file_digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def build_corpus(enc, block_size: int, *, packing: bool = True, **sources):
    """The training corpus: packed token streams (the default), or the starter's one padded example
    per line or story (`packing=False`, which the course notes' runs use). Keyword arguments as
    build_packed_corpus; `eval_files` works with both."""
    if packing:
        return build_packed_corpus(enc, block_size, **sources)
    return build_example_corpus(enc, block_size, **sources)
