"""What a sample reads like, measured: its words, how much it varies, and how much of it is copied.

  word share      the share of a text's words found in a set of words: Debian's English word
                  list (wamerican) together with the words of the bundled texts, so that
                  "thou" and "prithee" count as words.
  distinct-n      unique n-grams over all n-grams of several samples (1.0: nothing repeats).
  copied spans    the share of a sample's 8-word spans that occur verbatim in any text in
                  data/: a writer that recites its training text scores high, one that writes
                  its own sentences scores near 0.
  copied n-grams  the share of a sample's token n-grams found in the training streams (how
                  notebook 06 watches memorisation set in).
"""

from __future__ import annotations

import functools
import math
import re
from pathlib import Path

import numpy as np
import torch

from ..presets import DATA_DIR, InputError
from ..sources import read_text_file

WORD_LIST = Path("/usr/share/dict/words")  # Debian's wamerican
SPAN_WORDS = 8  # a span of this many words found verbatim in the bundled texts counts as copied
HASH_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)  # odd: a rolling hash of word hashes, modulo 2**64


def words_of(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


def word_share(text: str, words: set[str]) -> float:
    """The share of a text's words found in a set of words (NaN for a text with none)."""
    found = words_of(text)
    return sum(word in words for word in found) / len(found) if found else math.nan


def as_percent(share: float) -> str:
    """A share of words as a percentage; 'no words' where the text had none to count (NaN)."""
    return "no words" if math.isnan(share) else f"{share:.0%}"


def english_words(path: str | Path = WORD_LIST) -> set[str]:
    """The lowercase words of a word list, one a line (Debian's wamerican by default)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"No word list at {path}: `apt-get install wamerican` installs one (.ci/run does), "
                         "or give the path of any one-word-a-line list.")
    return {line.strip().lower() for line in path.read_text(encoding="utf-8", errors="ignore").splitlines()
            if line.strip()}


def bundled_texts() -> list[Path]:
    """Every text the bundle ships in data/: the plays, the custom corpus, 3seqs.txt."""
    return sorted(DATA_DIR.rglob("*.txt"))


@functools.lru_cache(maxsize=1)
def bundled_words() -> frozenset[str]:
    return frozenset(word for path in bundled_texts() for word in words_of(read_text_file(path)))


def reading_words() -> tuple[set[str], str]:
    """The words a sample's words are checked against, and what they are: Debian's word list and the
    bundled texts' own words, or the bundled texts' words alone where the list is not installed."""
    if WORD_LIST.is_file():
        return english_words() | bundled_words(), f"{WORD_LIST} (Debian's wamerican) and the words of data/"
    return set(bundled_words()), f"the words of data/ (no word list at {WORD_LIST})"


def rolling_hashes(symbols: np.ndarray, n: int) -> np.ndarray:
    """One 64-bit hash per run of n consecutive symbols (uint64), computed for all runs at once."""
    count = len(symbols) - n + 1
    spans = np.zeros(max(count, 0), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for offset in range(n if count > 0 else 0):
            spans = spans * HASH_MULTIPLIER + symbols[offset:offset + count]
    return spans


def span_hashes(words: list[str], n: int = SPAN_WORDS) -> np.ndarray:
    """One 64-bit hash per n-word span of a list of words (none if it has fewer than n)."""
    return rolling_hashes(np.array([hash(word) for word in words], dtype=np.int64).view(np.uint64), n)


def share_found(spans: np.ndarray, known: np.ndarray) -> float:
    """The share of some span hashes found among sorted known ones (NaN for none)."""
    if not len(spans):
        return math.nan
    found = known[np.minimum(np.searchsorted(known, spans), len(known) - 1)] == spans if len(known) else False
    return float(np.mean(found))


@functools.lru_cache(maxsize=1)
def bundled_spans() -> np.ndarray:
    """The hashes of every 8-word span of every bundled text, sorted, for looking spans up."""
    return np.unique(np.concatenate([span_hashes(words_of(read_text_file(path))) for path in bundled_texts()]))


def copied_span_share(texts: list[str]) -> float:
    """The share of the 8-word spans of some texts that occur verbatim in a text in data/ (NaN if none has 8)."""
    return share_found(np.concatenate([span_hashes(words_of(text)) for text in texts]), bundled_spans())


def distinct_n(samples: torch.Tensor, n: int) -> float:
    """Distinct n-grams over all n-grams of a batch of samples (num_samples, length): 1.0 when none repeats."""
    grams = samples.unfold(1, n, 1).reshape(-1, n)
    return len(grams.unique(dim=0)) / len(grams)


def token_span_hashes(ids, n: int) -> np.ndarray:
    return rolling_hashes(np.asarray(ids, dtype=np.int64).view(np.uint64), n)


def copied_ngram_fraction(generated: list[int], training, n: int = 4) -> float:
    """The share of the generated token n-grams that occur verbatim in the training text (streams or sequences)."""
    known = np.unique(np.concatenate([token_span_hashes(stream, n) for stream in training]))
    return share_found(token_span_hashes(generated, n), known)
