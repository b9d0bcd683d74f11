"""Section 4 (part three). Corpora: token streams cut into training windows and held-out windows.

A corpus draws training batches and gives held-out batches, in one of two ways:

  packed (the default)  Each source is one stream of ids (tokens.py). A training item is a
                        random window of block_size + 1 tokens of a stream: the model reads the
                        first block_size and predicts the last block_size, so every position is
                        a target and nothing is padding. The base corpus's weight picks the
                        stream of each window.
  per example           The starter's way, kept for the course notes' runs: every line (or
                        story) is one sequence cut to block_size, padded into batches, drawn as
                        the starter drew them.

The held-out part is a seeded choice of whole examples of each source (lines or stories),
taken out of training, and any files given with `eval_files`, held out whole. Packed held-out
streams are evaluated on consecutive windows that overlap by one token, so every held-out
token after a stream's first is predicted exactly once. A corpus also knows how many
characters its held-out targets hold, so that a loss can be given in bits per character, a
figure any tokenizer shares.
"""

from __future__ import annotations

import hashlib
import itertools
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from .presets import DATA_FLAGS, InputError, flag
from .sources import (BASE_CORPORA, HELDOUT_WORK, TextSource, base_corpus_source, check_base_corpus, note,
                      own_text_files, own_text_source, read_text_file, resolve_data_path)
from .tokens import count_characters, tokenize_source


def check_block_size(block_size: int) -> None:
    if block_size < 2:
        raise InputError(f"block_size={block_size} is too small: next-token prediction needs at least "
                         "2 tokens per sequence. Use --block_size 2 or more (the sanity check uses 32).")


def check_base_weight(base_weight: float) -> None:
    if not 0.0 <= base_weight <= 1.0:
        raise InputError(f"base_weight={base_weight} (--base_weight, or the starter's --tinystories_weight) "
                         "must lie in [0, 1]: 0 trains on your own text alone.")


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


# ---------------------------------------------------------------- packed streams


@dataclass
class TokenStream:
    """A stream of ids (uint16), the name of what it came from, and (for a held-out stream) how many
    characters of text its targets, every id after the first, stand for."""

    name: str
    ids: np.ndarray
    characters: int = 0

    def __len__(self) -> int:
        return len(self.ids)


def heldout_stream(enc, name: str, ids: np.ndarray) -> TokenStream:
    return TokenStream(name, ids, count_characters(enc, ids[1:]))


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


class HeldOutSet:
    """Held-out streams, evaluated on consecutive windows of block_size + 1 tokens."""

    packed = True

    def __init__(self, heldout: list[TokenStream], block_size: int):
        check_block_size(block_size)
        self.heldout, self.block_size = heldout, block_size

    @property
    def num_heldout_tokens(self) -> int:
        return sum(len(stream) for stream in self.heldout)

    @property
    def heldout_characters(self) -> int:
        """Characters of text the held-out targets stand for."""
        return sum(stream.characters for stream in self.heldout)

    @property
    def has_heldout(self) -> bool:
        return self.num_heldout_tokens >= 2

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


class PackedCorpus(HeldOutSet):
    """Training streams (the base corpus and the student's text), their weights, held-out streams, and validation
    streams: examples taken out of the training text to choose settings on (never the held-out ones)."""

    def __init__(self, train: list[TokenStream], weights: list[float], heldout: list[TokenStream], block_size: int,
                 validation: list[TokenStream] = ()):
        super().__init__(heldout, block_size)
        for stream in train:
            check_stream_fits(stream, block_size)
        self.train = train
        self.weights = torch.tensor(weights, dtype=torch.float64) / sum(weights)
        self.validation = HeldOutSet(list(validation), block_size)

    @property
    def num_train_tokens(self) -> int:
        return sum(len(stream) for stream in self.train)

    @property
    def trained_on(self) -> str:
        """The sources it trains on, as messages name them: what was read, not what was asked for (TinyStories out
        of reach leaves the plays)."""
        return " + ".join(stream.name for stream in self.train)

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


def heldout_choice(num_examples: int, test_fraction: float, seed: int) -> np.ndarray:
    """A seeded choice of whole examples to hold out, as a boolean mask."""
    chosen = np.zeros(num_examples, dtype=bool)
    chosen[shuffled_split(num_examples, test_fraction, seed)[1]] = True
    return chosen


def training_sources(base_corpus: str, base_weight: float, tinystories_stories: int, tinystories_path,
                     own: TextSource | None) -> list[tuple[TextSource, float]]:
    """(source, share of the training windows) for the base corpus and the student's own text.

    The base corpus is read only when it trains: a weight of 0 trains on your own text alone.
    """
    check_base_weight(base_weight)
    check_base_corpus(base_corpus)
    sources = []
    if base_weight > 0:
        sources.append((base_corpus_source(base_corpus, tinystories_stories=tinystories_stories,
                                           tinystories_path=tinystories_path), base_weight if own else 1.0))
    if own is not None:
        sources.append((own, 1.0 - base_weight))
    if not sources:
        raise InputError("No training text: --base_weight 0 trains on your own text alone, and none was given. "
                         "Pass --input_files 3seqs.txt (bundled) or --input_dir data/custom_corpus, or a base weight "
                         "above 0.")
    return sources


VALIDATION_FRACTION = 0.02  # of the training examples, taken out to choose a count model's mixture on


@dataclass(frozen=True)
class TrainingText:
    """What a corpus is made of, the defaults in one place: the base corpus ("plays", the bundle's, or
    "tinystories", from the hub or `tinystories_path`) and its share of the training draws, your own text
    (`input_files`, the *.txt files of `input_dir`, the first `limit_custom_examples` lines of them), and what is
    kept out of training: a seeded `test_fraction` of every source's examples, every line of `eval_files`, and (packed
    corpora) a seeded `validation_fraction` of the training examples, to choose settings on."""

    input_files: tuple = field(default=(), metadata=flag(
        "--input_files", group=DATA_FLAGS, nargs="*", default=[],
        help="Text files to train on, one example per line. A bare name not found here is looked up in the bundle's "
             "data/ folder (e.g. 3seqs.txt)."))
    input_dir: str | None = field(default=None, metadata=flag(
        "--input_dir", group=DATA_FLAGS,
        help="A folder whose *.txt files (recursively) are read like --input_files, e.g. data/custom_corpus."))
    eval_files: tuple = field(default=(), metadata=flag(
        "--eval_files", group=DATA_FLAGS, nargs="*", default=None,
        help="Held-out text files, never trained on: the run reports its loss on them (default: The Winter's Tale, "
             "which no run trains on, when a packed run trains on the plays; give the flag alone for none)."))
    limit_custom_examples: int | None = field(default=None, metadata=flag(
        "--limit_custom_examples", group=DATA_FLAGS, help="Keep only the first N lines of --input_files/--input_dir."))
    base_corpus: str = field(default="plays", metadata=flag(
        "--base_corpus", group=DATA_FLAGS, choices=BASE_CORPORA, default=None,
        help="What every run trains on besides your own text: the public-domain plays the bundle ships (the default; "
             "the same offline), or TinyStories from the Hugging Face hub or --tinystories_path (the default when "
             "that is given; the plays when the hub is out of reach)."))
    base_weight: float = field(default=0.5, metadata=flag(
        "--base_weight", "--tinystories_weight", group=DATA_FLAGS,
        help="Share of training windows (or draws) from the base corpus, the rest from --input_files/--input_dir; 0 "
             "trains on your own text alone. --tinystories_weight is the starter's name for it."))
    tinystories_stories: int = field(default=20_000, metadata=flag(
        "--tinystories_stories", group=DATA_FLAGS, help="How many TinyStories stories to stream from the Hugging Face "
                                                        "hub."))
    tinystories_path: str | None = field(default=None, metadata=flag(
        "--tinystories_path", group=DATA_FLAGS,
        help="A local TinyStories file (.txt with <|endoftext|> separators or one story a line, .jsonl or .parquet "
             "with a 'text' field) used instead of the hub."))
    test_fraction: float = field(default=0.0, metadata=flag(
        "--test_fraction", group=DATA_FLAGS,
        help="Fraction of each source's examples (lines, stories) held out, by a seeded choice."))
    validation_fraction: float = field(default=0.0, metadata=flag(
        "--validation_fraction", group=DATA_FLAGS, default=VALIDATION_FRACTION,
        help="With --counts: the share of the training examples (lines, stories) taken out of training to choose the "
             "count model and its weight on (never the held-out text)."))
    seed: int = 0

    def sources(self):
        """(source, weight) of every text to read: the base corpus and your own."""
        own = own_text_source(self.input_files, self.input_dir, self.limit_custom_examples)
        return training_sources(self.base_corpus, self.base_weight, self.tinystories_stories, self.tinystories_path,
                                own), own


def build_packed_corpus(enc, block_size: int, text: TrainingText) -> PackedCorpus:
    """Every source asked for as a packed stream, with a seeded held-out choice of whole examples from each,
    and the eval files held out whole. A source whose weight is 0 trains nothing but still gives its
    held-out examples. `validation_fraction` of each training source's other examples (a seeded choice)
    is taken out of training too, as validation text to choose settings on."""
    check_block_size(block_size)
    sources, _ = text.sources()
    train, weights, heldout, validation = [], [], [], []
    for source, weight in sources:
        tokenized = tokenize_source(enc, source)
        chosen = heldout_choice(len(tokenized), text.test_fraction, text.seed)
        if weight > 0:
            validating = validation_choice(~chosen, text.validation_fraction, text.seed)
            train.append(TokenStream(source.name, tokenized.select(~chosen & ~validating)))
            weights.append(weight)
            if validating.any():
                validation.append(heldout_stream(enc, f"{source.name} (validation)", tokenized.select(validating)))
        if chosen.any():
            heldout.append(heldout_stream(enc, f"{source.name} (held out)", tokenized.select(chosen)))
    heldout += eval_streams(enc, text.eval_files, own_text_files(text.input_files, text.input_dir))
    return PackedCorpus(train, weights, heldout, block_size, validation)


def validation_choice(training: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A seeded choice of `fraction` of the training examples (a mask over all examples) to validate on."""
    chosen = np.zeros(len(training), dtype=bool)
    if fraction > 0:
        candidates = np.flatnonzero(training)
        chosen[candidates[heldout_choice(len(candidates), fraction, seed + 1)]] = True
    return chosen


def eval_streams(enc, eval_files, training_files=()) -> list[TokenStream]:
    """Each --eval_files file as a held-out stream, whole. An empty one, or one with the same text as a
    training file, says so once (the first adds nothing; the second's loss is not held out)."""
    trained_on = {file_digest(path) for path in training_files}
    streams = []
    for path in map(Path, eval_files or ()):
        text = read_text_file(path, allow_empty=True)
        if not text.strip():
            note(f"{path} holds no text: it adds nothing to the held-out loss.")
            continue
        if file_digest(path) in trained_on:
            note(f"{path} has the same text as a training file: its loss is not a held-out loss.")
        ids = tokenize_source(enc, TextSource(str(path), [text])).ids
        streams.append(heldout_stream(enc, str(path), ids))
    return streams


def file_digest(path) -> str:
    return hashlib.sha256(resolve_data_path(path).read_bytes()).hexdigest()


def standard_heldout(enc, block_size: int, max_tokens: int | None = None, work: Path = HELDOUT_WORK) -> HeldOutSet:
    """The standard held-out work (The Winter's Tale), which no run trains on, as a held-out set; its first
    `max_tokens` tokens only when given (a study that evaluates often evaluates on a fixed slice)."""
    ids = tokenize_source(enc, TextSource(work.name, [read_text_file(work)])).ids
    if max_tokens is not None:
        ids = ids[:max_tokens + 1]
    return HeldOutSet([heldout_stream(enc, work.name, ids)], block_size)


# ---------------------------------------------------------------- the starter's per-example path


def tokenize(texts: list[str], enc, block_size: int) -> list[list[int]]:
    """Each text as GPT-2 token ids cut to block_size; texts of fewer than 2 tokens teach nothing and are dropped."""
    check_block_size(block_size)
    sequences = (ids[:block_size] for ids in enc.encode_ordinary_batch(texts))
    return [ids for ids in sequences if len(ids) >= 2]


class MixedSequenceDataset(Dataset):
    """Draws each item from the base corpus with probability base_weight, else from the student's sequences.

    As in the starter (where the base corpus was TinyStories), an "epoch" is len(all sequences)
    random draws (or `num_draws`, so that a three-line file can still fill batches of 32), and
    an item is a random sequence from the chosen source (Python's `random`, seeded by
    seed_everything).
    """

    def __init__(self, base_seqs: list[list[int]], own_seqs: list[list[int]], base_weight: float,
                 num_draws: int | None = None):
        check_base_weight(base_weight)
        self.base_seqs, self.own_seqs, self.base_weight = base_seqs, own_seqs, base_weight
        self.num_draws = num_draws

    def __len__(self) -> int:
        return self.num_draws or len(self.base_seqs) + len(self.own_seqs)

    def __getitem__(self, index: int) -> torch.Tensor:
        use_base = bool(self.base_seqs) and (not self.own_seqs or random.random() < self.base_weight)
        source = self.base_seqs if use_base else self.own_seqs
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


def split_train_test(sequences: list, test_fraction: float, seed: int) -> tuple[list, list]:
    """A seeded shuffle, then the last `test_fraction` of it held out (at least one each way)."""
    train, test = shuffled_split(len(sequences), test_fraction, seed)
    return [sequences[i] for i in train], [sequences[i] for i in test]


def make_loader(base, own, base_weight: float, batch_size: int, seed: int = 0,
                num_draws: int | None = None) -> DataLoader:
    if batch_size < 1:
        raise InputError(f"batch_size={batch_size}: give at least 1.")
    dataset = MixedSequenceDataset(base, own, base_weight, num_draws)
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=True, generator=generator,
                      collate_fn=seq_collate_fn)


@dataclass
class ExampleCorpus:
    """The starter's data: one token sequence per line or story (cut to block_size), padded into batches."""

    train_base: list[list[int]]
    train_own: list[list[int]]
    test_base: list[list[int]]
    test_own: list[list[int]]
    base_weight: float
    block_size: int
    heldout_characters: int = 0  # characters of text the held-out targets stand for
    trained_on: str = ""  # the sources it trains on, as messages name them ("the plays + your text")

    packed = False

    @property
    def num_train(self) -> int:
        return len(self.train_base) + len(self.train_own)

    @property
    def num_test(self) -> int:
        return len(self.test_base) + len(self.test_own)

    @property
    def has_heldout(self) -> bool:
        return self.num_test > 0

    def train_batches(self, batch_size: int, seed: int = 0, steps_per_epoch: int | None = None):
        """Endless padded batches (tokens, mask), drawn as the starter drew them.

        With steps_per_epoch, an epoch is num_train random draws (the starter's) cut after that
        many batches. Without it, every batch is batch_size draws, so a three-line file still
        fills a batch of 32.
        """
        loader = make_loader(self.train_base, self.train_own, self.base_weight, batch_size, seed,
                             num_draws=None if steps_per_epoch else batch_size)
        while True:
            yield from itertools.islice(loader, steps_per_epoch)

    def heldout_batches(self, batch_size: int):
        """Every held-out sequence once, in order, padded: (tokens, mask)."""
        sequences = [torch.tensor(seq, dtype=torch.long) for seq in self.test_base + self.test_own]
        for start in range(0, len(sequences), batch_size):
            yield seq_collate_fn(sequences[start:start + batch_size])

    def train_streams(self) -> list[np.ndarray]:
        """The training sequences' ids, as arrays (what a compact vocabulary counts)."""
        return [np.asarray(seq, dtype=np.uint16) for seq in self.train_base + self.train_own]


def source_lines(source: TextSource) -> list[str]:
    """A source's examples as the starter read them: stripped non-blank lines, or whole stories."""
    if not source.lines_are_examples:
        return source.documents
    return [line.strip() for text in source.documents for line in text.splitlines() if line.strip()]


def build_example_corpus(enc, block_size: int, text: TrainingText) -> ExampleCorpus:
    """Every source asked for, one sequence per example; each source split into train and test alike,
    and every line of the eval files held out too."""
    check_block_size(block_size)
    sources, own = text.sources()
    sequences, trained_on = {"base": [], "own": []}, []
    for source, weight in sources:
        sequences["own" if source is own else "base"] = tokenize(source_lines(source), enc, block_size)
        trained_on += [source.name] if weight > 0 else []
    train_base, test_base = split_train_test(sequences["base"], text.test_fraction, text.seed)
    train_own, test_own = split_train_test(sequences["own"], text.test_fraction, text.seed)
    eval_lines = [line.strip() for path in text.eval_files or ()
                  for line in read_text_file(path, allow_empty=True).splitlines() if line.strip()]
    test_own += tokenize(eval_lines, enc, block_size)
    targets = [np.asarray(seq[1:], dtype=np.int64) for seq in test_base + test_own]
    characters = count_characters(enc, np.concatenate(targets)) if targets else 0
    return ExampleCorpus(train_base, train_own, test_base, test_own, text.base_weight, block_size, characters,
                         " + ".join(trained_on))


def build_corpus(enc, block_size: int, text: TrainingText = TrainingText(), *, packing: bool = True):
    """The training corpus of `text` (the plays, by default): packed token streams (the default), or the starter's
    one padded example per line or story (`packing=False`, which the course notes' runs use)."""
    if packing:
        return build_packed_corpus(enc, block_size, text)
    return build_example_corpus(enc, block_size, text)
