"""Section 4 (part one). Sources: where training text comes from, read as text.

Text flows through section 4 in one direction: a *source* is text (this module); tokens.py
turns each of its documents into GPT-2's own ids; corpus.py cuts those ids into training
windows and held-out windows.

A source is a list of documents with a name:

  the base corpus   what every notebook and the command line train on. By default the
                    public-domain plays the bundle ships in data/plays/, the same offline,
                    in CI and on a laptop; or TinyStories, streamed from the Hugging Face hub
                    (or read from a local copy) when asked for. A document is a play or a story.
  your own text     --input_files, or every *.txt under --input_dir; a document is a file.

Two works of the plays are never trained on by any run: The Winter's Tale, the standard
held-out work every figure's held-out loss is measured on, and Henry VIII, a second held-out
work for the benchmarks that choose the defaults (a default tuned on one work is checked on
another).

Bad input stops with one `InputError` that names the input and the fix; a line that is not
UTF-8 is skipped with a warning naming its file and line.
"""

from __future__ import annotations

import itertools
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import pandas as pd

from .presets import DATA_DIR, InputError

TINYSTORIES_HUB_ID = "roneneldan/TinyStories"
STORY_SEPARATOR = "<|endoftext|>"
BASE_CORPORA = ("plays", "tinystories")
PLAYS_DIR = DATA_DIR / "plays"
HELDOUT_WORK = PLAYS_DIR / "winters_tale.txt"  # the standard held-out work: no run trains on it
SECOND_HELDOUT_WORK = PLAYS_DIR / "henry_viii.txt"  # held out too, for the benchmarks behind the defaults
HELDOUT_WORKS = (HELDOUT_WORK, SECOND_HELDOUT_WORK)


def warn(message: str) -> None:
    print(f"Warning: {message}", file=sys.stderr)


def note(message: str) -> None:
    print(message, file=sys.stderr)


@dataclass
class TextSource:
    """Documents of text and the name messages give them.

    `lines_are_examples`: an example (what a held-out choice takes whole) is a line of a
    document (files), or the whole document (stories).
    """

    name: str
    documents: list[str]
    lines_are_examples: bool = True


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


def decode_utf8_lines(raw: bytes, path: Path) -> str:
    """Bytes as text, line by line, skipping each line that is not UTF-8 with a warning naming it."""
    kept = []
    for number, line in enumerate(raw.splitlines(keepends=True), start=1):
        try:
            kept.append(line.decode("utf-8"))
        except UnicodeDecodeError as error:
            warn(f"{path} line {number} is not valid UTF-8 ({error.reason} at byte {error.start}); "
                 "skipped it. Re-save the file as UTF-8 to keep that line.")
    return "".join(kept)


def read_text_file(path: str | os.PathLike, allow_empty: bool = False) -> str:
    """A text file's text as `open(path).read()` gives it: UTF-8, with every line ending as "\\n".

    Lines that are not UTF-8 are skipped with a warning. A file with no text (blank lines at
    most) is an error unless `allow_empty`.
    """
    path = resolve_data_path(path)
    if path.is_dir():
        raise InputError(f"{path} is a folder: pass folders with --input_dir, files with --input_files.")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = decode_utf8_lines(raw, path)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip() and not allow_empty:
        raise InputError(f"{path} holds no text: put one example per line in it, or leave it out.")
    return text


def read_examples(path: str | os.PathLike) -> list[str]:
    """One example per non-blank line of a text file, stripped, as the starter read them."""
    return [line.strip() for line in read_text_file(path).splitlines() if line.strip()]


def find_text_files(folder: str | os.PathLike) -> list[Path]:
    """Every *.txt under the folder, recursively, in a stable (sorted) order."""
    folder = resolve_data_path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder} is a file, not a folder: pass files with --input_files.")
    files = sorted(p for p in folder.rglob("*.txt") if p.is_file())
    if not files:
        raise InputError(f"{folder} contains no .txt files: add some, or point --input_dir elsewhere.")
    return files


def own_text_files(input_files=(), input_dir=None) -> list[Path]:
    """The files of the student's own text: every --input_files file, then every *.txt under --input_dir."""
    return [*map(resolve_data_path, input_files or ()), *(find_text_files(input_dir) if input_dir else [])]


def first_lines(text: str, limit: int) -> str:
    """A text cut after its first `limit` non-blank lines (the blank lines between them kept)."""
    lines = text.splitlines(keepends=True)
    non_blank = [index for index, line in enumerate(lines) if line.strip()]
    return "".join(lines[:non_blank[limit - 1] + 1]) if len(non_blank) > limit else text


def read_own_documents(input_files=(), input_dir=None, limit: int | None = None) -> list[str]:
    """The student's own text, a document per file, cut after the first `limit` lines in all when given.

    An empty or unreadable file inside --input_dir is skipped with a warning; one named in
    --input_files is an error.
    """
    if limit is not None and limit < 1:
        raise InputError(f"limit_custom_examples={limit}: give a positive number, or leave it out for all lines.")
    documents = [read_text_file(path) for path in input_files or ()]
    for path in (find_text_files(input_dir) if input_dir else []):
        try:
            documents.append(read_text_file(path))
        except InputError as error:
            warn(f"{error} Skipped it.")
    if limit is None:
        return documents
    kept = []
    for text in documents:
        lines = sum(1 for line in text.splitlines() if line.strip())
        if limit <= 0:
            break
        kept.append(first_lines(text, limit))
        limit -= lines
    return kept


def own_text_source(input_files=(), input_dir=None, limit: int | None = None) -> TextSource | None:
    """The student's own text as a source (None when none was given)."""
    documents = read_own_documents(input_files, input_dir, limit)
    if not documents:
        return None
    name = ", ".join([*(str(path) for path in input_files or ()), *([str(input_dir)] if input_dir else [])])
    return TextSource(name, documents)


def load_custom_examples(input_files=(), input_dir=None, limit: int | None = None) -> list[str]:
    """The student's own text as the starter read it: every non-blank line, stripped, one example each."""
    return [line.strip() for text in read_own_documents(input_files, input_dir, limit)
            for line in text.splitlines() if line.strip()]


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
        stories = split_stories(read_text_file(path, allow_empty=True))
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


def stream_tinystories(num_stories: int) -> tuple[list[str], str | None]:
    """The first `num_stories` TinyStories training stories, streamed so only those are fetched; and
    why none came (None when they did): the hub out of reach, HF_HUB_OFFLINE=1, a failed download."""
    reason = hub_unreachable_reason()
    if reason is None:
        try:
            from datasets import load_dataset

            rows = load_dataset(TINYSTORIES_HUB_ID, split="train", streaming=True)
            return [row["text"] for row in itertools.islice(rows, num_stories)], None
        except Exception as error:  # the hub answered but the download failed
            reason = f"the download failed ({type(error).__name__}: {error})"
    return [], reason


# ---------------------------------------------------------------- the base corpus


def play_files(held_out=HELDOUT_WORKS) -> list[Path]:
    """The bundled plays that runs train on: every work in data/plays/ but the held-out ones."""
    held_out = {Path(path).name for path in held_out}
    files = sorted(path for path in PLAYS_DIR.glob("*.txt") if path.name not in held_out)
    if not files:
        raise InputError(f"No plays in {PLAYS_DIR}: the bundle's data/ folder is incomplete; reinstall the bundle.")
    return files


def plays_source() -> TextSource:
    """The base corpus the bundle ships: 25 public-domain works, a document each."""
    return TextSource("the plays", [read_text_file(path) for path in play_files()])


def tinystories_source(num_stories: int, path=None) -> TextSource | None:
    """TinyStories from a local copy when `path` is given, else streamed from the hub; None (with the
    reason said in one line) when the hub gives none."""
    if path:
        return TextSource("TinyStories", read_tinystories_file(path, num_stories), lines_are_examples=False)
    stories, reason = stream_tinystories(num_stories) if num_stories > 0 else ([], "--tinystories_stories is 0")
    if not stories:
        note(f"TinyStories skipped: {reason or 'no stories were asked for'}. Training on the bundled plays "
             "instead (or pass --tinystories_path with a local copy).")
        return None
    return TextSource("TinyStories", stories, lines_are_examples=False)


def check_base_corpus(name: str) -> None:
    if name not in BASE_CORPORA:
        raise InputError(f"--base_corpus {name!r}: choose one of {', '.join(BASE_CORPORA)}.")


def base_corpus_source(name: str = "plays", *, tinystories_stories: int = 20_000, tinystories_path=None) -> TextSource:
    """The base corpus: the bundled plays, or TinyStories (the plays when the hub gives none)."""
    check_base_corpus(name)
    if name == "tinystories":
        return tinystories_source(tinystories_stories, tinystories_path) or plays_source()
    return plays_source()
