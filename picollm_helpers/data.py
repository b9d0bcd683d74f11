"""Section 4. Data: text sources, and the starter's per-example path (one padded sequence per example).

Sources are TinyStories (streamed from the Hugging Face hub, or a local file) and the
student's own text (`--input_files`, one example a line, or every `*.txt` under
`--input_dir`). Bad input stops with one `InputError` that names the input and the fix;
a line that is not UTF-8 is skipped with a warning naming its file and line.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from .device import is_main_process
from .presets import DATA_DIR, InputError

TINYSTORIES_HUB_ID = "roneneldan/TinyStories"
STORY_SEPARATOR = "<|endoftext|>"


def warn(message: str) -> None:
    print(f"Warning: {message}", file=sys.stderr)


def note(message: str) -> None:
    print(message, file=sys.stderr)


# ---------------------------------------------------------------- reading files


def resolve_data_path(path: str | os.PathLike) -> Path:
    """The path as given if it exists, else a bare name looked up in the bundle's data/ folder."""
    given = Path(path)
    if given.exists():
        return given
    bundled = DATA_DIR / given
    if not given.is_absolute() and bundled.exists():
        return bundled
    raise InputError(
        f"Input {str(path)!r} not found (looked in {Path.cwd()} and in {DATA_DIR}): "
        "check the spelling, or give a path relative to the folder you run from."
    )


def read_utf8_lines(path: Path) -> list[str]:
    """The file's lines; a line that is not UTF-8 is skipped with a warning naming file and line."""
    lines = []
    for number, raw in enumerate(path.read_bytes().splitlines(), start=1):
        try:
            lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError as error:
            warn(f"{path} line {number} is not valid UTF-8 ({error.reason} at byte {error.start}); "
                 "skipped it. Re-save the file as UTF-8 to keep that line.")
    return lines


def read_lines_with_breaks(path: str | os.PathLike, allow_empty: bool = False) -> list[str]:
    """A text file as its examples: each non-blank line with its newline, blank lines kept with the line before.

    Joined back together they give the file's text (minus leading blank lines and lines that
    are not UTF-8), which is what a packed stream trains on. A file with no text is an error
    unless `allow_empty`.
    """
    path = resolve_data_path(path)
    if path.is_dir():
        raise InputError(f"{path} is a folder: pass folders with --input_dir, files with --input_files.")
    examples = []
    for line in read_utf8_lines(path):
        if line.strip():
            examples.append(line + "\n")
        elif examples:
            examples[-1] += "\n"
    if not examples and not allow_empty:
        raise InputError(f"{path} holds no text: put one example per line in it, or leave it out.")
    return examples


def read_examples(path: str | os.PathLike) -> list[str]:
    """One example per non-blank line of a text file, stripped, as the starter read them."""
    return [line.strip() for line in read_lines_with_breaks(path)]


def find_text_files(folder: str | os.PathLike) -> list[Path]:
    """Every *.txt under the folder, recursively, in a stable (sorted) order."""
    folder = resolve_data_path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder} is a file, not a folder: pass files with --input_files.")
    files = sorted(p for p in folder.rglob("*.txt") if p.is_file())
    if not files:
        raise InputError(f"{folder} contains no .txt files: add some, or point --input_dir elsewhere.")
    return files


def load_custom_documents(input_files=(), input_dir=None, limit: int | None = None) -> list[list[str]]:
    """The student's own text, file by file: the lines (with their breaks) of every --input_files
    file, then of every *.txt under --input_dir; the first `limit` lines in all when given.

    An empty or unreadable file inside --input_dir is skipped with a warning; one named in
    --input_files is an error.
    """
    if limit is not None and limit < 1:
        raise InputError(f"limit_custom_examples={limit}: give a positive number, or leave it out for all lines.")
    documents = [read_lines_with_breaks(path) for path in input_files or ()]
    if input_dir:
        for path in find_text_files(input_dir):
            try:
                documents.append(read_lines_with_breaks(path))
            except InputError as error:
                warn(f"{error} Skipped it.")
    if limit:
        documents = first_lines(documents, limit)
    return documents


def first_lines(documents: list[list[str]], limit: int) -> list[list[str]]:
    """The first `limit` lines of a list of documents, keeping the documents they belong to."""
    kept = []
    for lines in documents:
        if limit <= 0:
            break
        kept.append(lines[:limit])
        limit -= len(kept[-1])
    return kept


def load_custom_examples(input_files=(), input_dir=None, limit: int | None = None) -> list[str]:
    """The student's own text as the starter read it: every non-blank line, stripped, one example each."""
    return [line.strip() for lines in load_custom_documents(input_files, input_dir, limit) for line in lines]


# ---------------------------------------------------------------- TinyStories


def split_stories(text: str) -> list[str]:
    """Stories from TinyStories text: `<|endoftext|>`-separated if it has separators, else one a line."""
    pieces = text.split(STORY_SEPARATOR) if STORY_SEPARATOR in text else text.splitlines()
    return [story.strip() for story in pieces if story.strip()]


def read_tinystories_file(path: str | os.PathLike, num_stories: int | None = None) -> list[str]:
    """Stories from a local .txt, .jsonl or .parquet copy of TinyStories (a `text` field per story)."""
    path = resolve_data_path(path)
    suffix = path.suffix.lower()
    if suffix == ".txt":
        stories = split_stories("\n".join(read_utf8_lines(path)))
    elif suffix in (".jsonl", ".parquet"):
        try:
            table = pd.read_json(path, lines=True) if suffix == ".jsonl" else pd.read_parquet(path)
        except (ValueError, OSError) as error:
            raise InputError(f"{path} could not be read as {suffix[1:]} ({error}): check the file.") from None
        if "text" not in table.columns:
            raise InputError(f"{path} has no 'text' field (it has {list(table.columns)}): "
                             "TinyStories rows need one.")
        stories = [story.strip() for story in table["text"].dropna().astype(str) if story.strip()]
    else:
        raise InputError(f"{path}: --tinystories_path takes a .txt, .jsonl or .parquet file.")
    if not stories:
        raise InputError(f"{path} holds no stories: check that it is a TinyStories file.")
    return stories[:num_stories] if num_stories else stories


def hub_unreachable_reason(timeout_s: float = 3.0) -> str | None:
    """Why the Hugging Face hub cannot be used now, or None if it answers. Quick: one socket."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE=1 is set"
    host = urlparse(constants.ENDPOINT).hostname
    try:
        socket.create_connection((host, 443), timeout=timeout_s).close()
    except OSError as error:
        return f"{host} is unreachable ({type(error).__name__})"
    return None


def stream_tinystories(num_stories: int) -> list[str]:
    """The first `num_stories` TinyStories training stories, streamed so only those are fetched.

    Offline (or with HF_HUB_OFFLINE=1) this prints one line saying TinyStories was skipped
    and returns no stories, so that a run can go on with the other sources.
    """
    reason = hub_unreachable_reason()
    if reason is None:
        try:
            from datasets import load_dataset

            rows = load_dataset(TINYSTORIES_HUB_ID, split="train", streaming=True)
            return [row["text"] for row in itertools.islice(rows, num_stories)]
        except Exception as error:  # the hub answered but the download failed
            reason = f"the download failed ({type(error).__name__}: {error})"
    note(f"TinyStories skipped: {reason}. Going on with the other sources "
         "(or pass --tinystories_path with a local copy).")
    return []


def load_tinystories(num_stories: int, path: str | os.PathLike | None = None) -> list[str]:
    """TinyStories from a local file when `path` is given, else streamed from the hub."""
    if path:
        return read_tinystories_file(path, num_stories)
    return stream_tinystories(num_stories) if num_stories > 0 else []


# ---------------------------------------------------------------- tokens and batches


def check_block_size(block_size: int) -> None:
    if block_size < 2:
        raise InputError(f"block_size={block_size} is too small: next-token prediction needs at least "
                         "2 tokens per sequence. Use --block_size 2 or more (the sanity check uses 32).")


def tokenize(texts: list[str], enc, block_size: int) -> list[list[int]]:
    """Each text as GPT-2 token ids cut to block_size; texts of fewer than 2 tokens teach nothing and are dropped."""
    check_block_size(block_size)
    sequences = (ids[:block_size] for ids in enc.encode_ordinary_batch(texts))
    return [ids for ids in sequences if len(ids) >= 2]


class MixedSequenceDataset(Dataset):
    """Draws each item from TinyStories with probability p_tiny, else from the other sequences.

    As in the starter, an "epoch" is len(all sequences) random draws (or `num_draws`, so that a
    three-line file can still fill batches of 32), and an item is a random sequence from the
    chosen source (Python's `random`, seeded by seed_everything).
    """

    def __init__(self, tinystories_seqs: list[list[int]], other_seqs: list[list[int]], p_tiny: float,
                 num_draws: int | None = None):
        if not 0.0 <= p_tiny <= 1.0:
            raise InputError(f"tinystories_weight={p_tiny} must lie in [0, 1].")
        self.tinystories_seqs, self.other_seqs, self.p_tiny = tinystories_seqs, other_seqs, p_tiny
        self.num_draws = num_draws

    def __len__(self) -> int:
        return self.num_draws or len(self.tinystories_seqs) + len(self.other_seqs)

    def __getitem__(self, index: int) -> torch.Tensor:
        use_tiny = bool(self.tinystories_seqs) and (not self.other_seqs or random.random() < self.p_tiny)
        source = self.tinystories_seqs if use_tiny else self.other_seqs
        return torch.tensor(random.choice(source), dtype=torch.long)


def seq_collate_fn(batch: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad a batch to its longest sequence: tokens (seq_len, batch) and a mask of real tokens.

    The starter padded with token 0 and trained on the padding too; the mask lets the loss
    skip it, so a model is never taught that `!` (token 0) follows the end of every line.
    """
    lengths = torch.tensor([len(seq) for seq in batch])
    tokens = torch.nn.utils.rnn.pad_sequence(batch, batch_first=False, padding_value=0)
    mask = torch.arange(tokens.shape[0]).unsqueeze(1) < lengths.unsqueeze(0)
    return tokens, mask


def shuffled_split(count: int, test_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Indices of `count` examples split by a seeded shuffle: (training, held out), at least one each way."""
    if not 0.0 <= test_fraction < 1.0:
        raise InputError(f"test_fraction={test_fraction} must lie in [0, 1): 0.1 holds out a tenth.")
    order = list(range(count))
    if test_fraction == 0.0 or count < 2:
        return order, []
    random.Random(seed).shuffle(order)
    n_test = min(max(1, round(count * test_fraction)), count - 1)
    return order[n_test:], order[:n_test]


def split_train_test(sequences: list, test_fraction: float, seed: int) -> tuple[list, list]:
    """A seeded shuffle, then the last `test_fraction` of it held out (at least one each way)."""
    train, test = shuffled_split(len(sequences), test_fraction, seed)
    return [sequences[i] for i in train], [sequences[i] for i in test]


@dataclass
class ExampleCorpus:
    """The starter's data: one token sequence per line or story (cut to block_size), padded into batches.

    Kept beside the packed streams (packing.py) because the course notes' runs use it.
    """

    train_tiny: list[list[int]]
    train_other: list[list[int]]
    test_tiny: list[list[int]]
    test_other: list[list[int]]
    p_tiny: float
    block_size: int

    packed = False

    @property
    def num_train(self) -> int:
        return len(self.train_tiny) + len(self.train_other)

    @property
    def num_test(self) -> int:
        return len(self.test_tiny) + len(self.test_other)

    @property
    def has_heldout(self) -> bool:
        return self.num_test > 0

    def train_loader(self, batch_size: int, seed: int = 0, num_draws: int | None = None) -> DataLoader:
        return make_loader(self.train_tiny, self.train_other, self.p_tiny, batch_size, seed, num_draws)

    def train_batches(self, batch_size: int, seed: int = 0, steps_per_epoch: int | None = None):
        """Endless padded batches (tokens, mask), drawn as the starter drew them.

        With steps_per_epoch, an epoch is num_train random draws (the starter's) cut after that
        many batches. Without it, every batch is batch_size draws, so a three-line file still
        fills a batch of 32.
        """
        loader = self.train_loader(batch_size, seed, num_draws=None if steps_per_epoch else batch_size)
        while True:
            yield from itertools.islice(loader, steps_per_epoch)

    def heldout_batches(self, batch_size: int):
        """Every held-out sequence once, in order, padded: (tokens, mask)."""
        sequences = [torch.tensor(seq, dtype=torch.long) for seq in self.test_tiny + self.test_other]
        for start in range(0, len(sequences), batch_size):
            yield seq_collate_fn(sequences[start:start + batch_size])

    def train_streams(self) -> list[np.ndarray]:
        """The training sequences' ids, as arrays (what a compact vocabulary counts)."""
        return [np.asarray(seq, dtype=np.uint16) for seq in self.train_tiny + self.train_other]


def make_loader(tiny, other, p_tiny: float, batch_size: int, seed: int = 0,
                num_draws: int | None = None) -> DataLoader:
    if batch_size < 1:
        raise InputError(f"batch_size={batch_size}: give at least 1.")
    dataset = MixedSequenceDataset(tiny, other, p_tiny, num_draws)
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=True, generator=generator,
                      collate_fn=seq_collate_fn)


def build_example_corpus(enc, block_size: int, *, tinystories_weight: float = 0.5, tinystories_stories: int = 20_000,
                         tinystories_path=None, input_files=(), input_dir=None, limit_custom_examples=None,
                         test_fraction: float = 0.0, seed: int = 0, eval_files=()) -> ExampleCorpus:
    """Load every source asked for, tokenize each example, split each source into train and test alike;
    every line of the eval files is held out too."""
    check_block_size(block_size)
    if not 0.0 <= tinystories_weight <= 1.0:
        raise InputError(f"tinystories_weight={tinystories_weight} must lie in [0, 1]: 0 skips TinyStories.")
    stories = load_tinystories(tinystories_stories, tinystories_path) if tinystories_weight > 0 else []
    custom = load_custom_examples(input_files, input_dir, limit_custom_examples)
    tiny_seqs, other_seqs = tokenize(stories, enc, block_size), tokenize(custom, enc, block_size)
    if not tiny_seqs and not other_seqs:
        raise InputError(
            "No training text: TinyStories gave no stories and no --input_files or --input_dir lines were "
            "given. Pass --input_files 3seqs.txt (bundled) or --input_dir data/custom_corpus."
        )
    train_tiny, test_tiny = split_train_test(tiny_seqs, test_fraction, seed)
    train_other, test_other = split_train_test(other_seqs, test_fraction, seed)
    eval_lines = [line.strip() for path in eval_files or ()
                  for line in read_lines_with_breaks(resolve_data_path(path), allow_empty=True)]
    return ExampleCorpus(train_tiny, train_other, test_tiny, test_other + tokenize(eval_lines, enc, block_size),
                         p_tiny=tinystories_weight, block_size=block_size)


def write_json_atomically(path: str | os.PathLike, payload) -> Path:
    """Write JSON to a temporary file beside `path`, then rename: never a half-written file.

    In a data-parallel run only the main process writes; the others return the path alone.
    """
    path = Path(path)
    if not is_main_process():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(temporary, path)
    return path
