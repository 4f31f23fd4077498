"""Reading DNA: streaming FASTA / FASTA.gz / bgzip / one-sequence-per-line text, windows.

Lives here, once, for the tokenizer trainer, pretraining and the embedding CLI: format detection,
validation with file:line errors, record streaming in bounded memory and fixed-size windows.
`canonical` and `reverse_complement` are re-exported from dna_alphabet.py for these callers.
Not here: the alphabet, complement or canonical tables (dna_alphabet.py), tokenization or anything
torch.
Also here: `record_index`, the (name, length) of every record of a file, cached in a folder keyed by the
file's absolute path, size and modification time, so a second start skips the full read.

Conventions
- Letters: the IUPAC nucleotide codes in either case, plus U (RNA) (dna_alphabet.IUPAC_LETTERS).
  Anything else is an error that names the file and line. Records are yielded canonical
  (dna_alphabet.canonical: upper case, U read as T, ambiguity codes RYKMSWBDHV read as N).
- A plain-text file holds one sequence per line; blank lines are skipped. A FASTA file starts with
  a '>' header; sequence lines may have any length.
- Compression is detected from the gzip magic bytes, not the file name; bgzip is gzip. A truncated
  or corrupt gzip stream is a GenomeFormatError naming the file.
- Text is UTF-8 (a leading byte-order mark is dropped): FASTA headers may hold any UTF-8 text;
  sequence lines hold only the letters above. Line numbers count line feeds from 1 in the file as
  given (CRLF files count the same), and an error names the line of the offending character.
"""

import codecs
import csv
import gzip
import hashlib
import io
import json
import logging
import os
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from .chunked_output import atomic_write
from .dna_alphabet import IUPAC_LETTERS, canonical, reverse_complement

__all__ = [
    "GenomeFormatError", "Record", "IUPAC_LETTERS", "canonical", "reverse_complement",
    "iter_record_chunks", "iter_records", "iter_windows", "split_n_runs", "record_index", "default_index_cache",
    "FASTA_SUFFIXES", "read_csv", "read_records",
]

logger = logging.getLogger(__name__)

_GZIP_MAGIC = b"\x1f\x8b"
_GZIP_ERRORS = (OSError, EOFError, zlib.error)  # truncated stream, bad CRC, corrupt block
_SNIFF_BYTES = 4096
# Lines are read in pieces of at most this many characters, so a FASTA file without line breaks
# still streams in bounded memory.
_READ_CHUNK = 1 << 20


class GenomeFormatError(ValueError):
    """Input that is not DNA in a supported format; the message names the file and line."""


@dataclass
class Record:
    source: str  # file path
    name: str  # FASTA header without '>', or "line N" for plain text
    line: int  # line number of the header (or of the sequence in plain text)
    fasta: bool = True  # False: the file has no '>' header and is read as one sequence per line


def _open_binary(path: str) -> io.BufferedIOBase:
    """The file's bytes, decompressed when it starts with the gzip magic."""
    if os.path.isdir(path):
        raise FileNotFoundError(f"{path}: not found: this is a folder, expected a file")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file")
    with open(path, "rb") as f:
        head = f.read(_SNIFF_BYTES)
    if head.startswith(_GZIP_MAGIC):
        raw = gzip.open(path, "rb")
        try:
            head = raw.peek(_SNIFF_BYTES)[:_SNIFF_BYTES]
        except _GZIP_ERRORS as e:
            raw.close()
            raise GenomeFormatError(f"{path}: truncated or corrupt gzip/bgzip data ({e})") from None
    else:
        raw = open(path, "rb")
    if b"\x00" in head:
        raw.close()
        raise GenomeFormatError(f"{path}: binary data (NUL bytes), expected FASTA or one DNA sequence per line")
    return raw


def _check_letters(piece: str, path: str, line: int) -> None:
    if not IUPAC_LETTERS.issuperset(piece):
        bad = next(c for c in piece if c not in IUPAC_LETTERS)
        what = "a carriage return without a line feed" if bad == "\r" else f"unexpected character {bad!r}"
        raise GenomeFormatError(
            f"{path}:{line}: {what}; expected DNA letters (IUPAC codes) "
            "or, in a FASTA file, a '>' header line"
        )


def check_sequence(seq: str, path: str, line: int) -> str:
    """`seq` (surrounding whitespace removed) in canonical form, or a GenomeFormatError naming file and line."""
    seq = seq.strip()
    _check_letters(seq, path, line)
    return canonical(seq)


def _lines(path: str) -> Iterator[tuple[int, str, bool]]:
    """(line number, piece, ends_line): each line in pieces of at most _READ_CHUNK bytes.

    Lines are counted from 1 at each line feed of the file as given (a CRLF ending is one line).
    Each line is decoded on its own as UTF-8 (a leading byte-order mark is dropped), so an error
    names the line that holds the offending byte; headers may hold any UTF-8 text, sequence lines
    are checked letter by letter by the callers.
    """
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    with _open_binary(path) as f:
        number = 1
        while True:
            try:
                raw = f.readline(_READ_CHUNK)
            except _GZIP_ERRORS as e:
                raise GenomeFormatError(f"{path}: truncated or corrupt gzip/bgzip data after line {number - 1} ({e})") from None
            if number == 1 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8):]
            try:
                piece = decoder.decode(raw, final=not raw)
            except UnicodeDecodeError:
                raise GenomeFormatError(
                    f"{path}:{number}: bytes that are not UTF-8 text; expected FASTA or one DNA sequence per line"
                ) from None
            if not raw:
                return
            ends = raw.endswith(b"\n")
            yield number, piece.rstrip("\r\n") if ends else piece, ends
            if ends:
                number += 1


def iter_record_chunks(path: str) -> Iterator[tuple[Record, Iterator[str]]]:
    """Stream the records of one file as (record, iterator of canonical sequence pieces).

    Consume each piece iterator before advancing to the next record. Memory is bounded by
    _READ_CHUNK whatever the record or line length. Raises GenomeFormatError for non-DNA
    content and for an input with no sequence at all.
    """
    lines = _lines(path)
    state = {"pending": None, "any": False}

    def first_content():
        for number, piece, ends in lines:
            if piece.strip():
                return number, piece, ends
        return None

    first = first_content()
    if first is None:
        raise GenomeFormatError(f"{path}: empty file, expected FASTA or one DNA sequence per line")
    is_fasta = first[1].startswith(">")

    if not is_fasta:
        def line_pieces(number, piece, ends):
            while True:
                piece = piece.strip()
                _check_letters(piece, path, number)
                if piece:
                    state["any"] = True
                    yield canonical(piece)
                if ends:
                    return
                nxt = next(lines, None)
                if nxt is None:
                    return
                _, piece, ends = nxt

        current = first
        while current is not None:
            number, piece, ends = current
            if piece.strip():
                yield Record(path, f"line {number}", number, fasta=False), line_pieces(number, piece, ends)
            current = next(lines, None)
        return

    def sequence_pieces():
        for number, piece, ends in lines:
            if piece.startswith(">"):
                state["pending"] = (number, piece)
                return
            piece = piece.strip()
            if piece:
                _check_letters(piece, path, number)
                state["any"] = True
                yield canonical(piece)

    header = (first[0], first[1])
    while header is not None:
        number, text = header
        state["pending"] = None
        yield Record(path, text[1:].strip(), number), sequence_pieces()
        header = state["pending"]
    if not state["any"]:
        raise GenomeFormatError(f"{path}: FASTA headers but no sequence lines")


def iter_records(paths: Iterable[str]) -> Iterator[tuple[Record, str]]:
    """(record, whole canonical sequence) for every record of every file. Holds one record in memory."""
    for path in paths:
        for record, pieces in iter_record_chunks(str(path)):
            yield record, "".join(pieces)


INDEX_CACHE_ENV = "DNABERT2_INDEX_CACHE"  # overrides the default folder of cached record indexes
_INDEX_VERSION = 1  # bump when the index format or the reader's record rules change


def default_index_cache() -> str:
    """$DNABERT2_INDEX_CACHE, else $XDG_CACHE_HOME/dnabert2/record_index (~/.cache when unset)."""
    if os.environ.get(INDEX_CACHE_ENV):
        return os.environ[INDEX_CACHE_ENV]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "dnabert2", "record_index")


def _file_key(path: str) -> dict:
    stat = os.stat(path)
    return {"path": os.path.abspath(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "version": _INDEX_VERSION}


def record_index(path: str, cache_dir: str | None = None) -> list[tuple[str, int]]:
    """(name, length in bp) of every record of `path`, in file order.

    With `cache_dir` the index is read from / written to CACHE_DIR/<sha1 of path, size, mtime>.json
    (written atomically: temporary name, then rename); a changed file has another key, so a stale
    index is never used. Without it every call reads the whole file. An unreadable or corrupt cache
    entry is logged and rebuilt.
    """
    key = _file_key(path) if cache_dir else None
    entry = None
    if cache_dir:
        digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()
        entry = os.path.join(cache_dir, f"{digest}.json")
        if os.path.isfile(entry):
            try:
                with open(entry) as f:
                    cached = json.load(f)
                if cached["key"] == key:
                    return [(name, length) for name, length in cached["records"]]
                logger.warning("record index %s belongs to another file version; rebuilding it", entry)
            except (OSError, ValueError, KeyError, TypeError) as e:
                logger.warning("record index %s is unreadable (%s); rebuilding it", entry, e)
    records = [(record.name, sum(len(p) for p in pieces)) for record, pieces in iter_record_chunks(path)]
    if entry:
        os.makedirs(cache_dir, exist_ok=True)

        def write(tmp: str) -> None:
            with open(tmp, "w") as f:
                json.dump({"key": key, "records": records}, f)

        atomic_write(entry, write)
    return records


def iter_windows(paths: Iterable[str], window: int, stride: int | None = None) -> Iterator[tuple[Record, int, str]]:
    """Stream (record, start, window) tiles of at most `window` bp over every record of every file.

    Consecutive tiles start `stride` (default: `window`) apart; the last tile of a record may be
    shorter. FASTA line breaks never cut a tile. Memory is bounded by window + _READ_CHUNK.
    """
    if window < 1:
        raise ValueError(f"window must be >= 1 bp, got {window}")
    stride = window if stride is None else stride
    if not 1 <= stride <= window:
        raise ValueError(f"stride must be in [1, window={window}], got {stride}")
    for path in paths:
        for record, pieces in iter_record_chunks(str(path)):
            buffer, start = "", 0
            for piece in pieces:
                buffer += piece
                while len(buffer) >= window:
                    yield record, start, buffer[:window]
                    buffer, start = buffer[stride:], start + stride
            if buffer and (start == 0 or len(buffer) > window - stride):
                yield record, start, buffer


def split_n_runs(seq: str, max_n_run: int = 0) -> list[str]:
    """Pieces of `seq` between runs of N longer than `max_n_run` (those runs are dropped)."""
    pieces, start, i, n = [], 0, 0, len(seq)
    while i < n:
        if seq[i] == "N":
            j = i
            while j < n and seq[j] == "N":
                j += 1
            if j - i > max_n_run:
                if i > start:
                    pieces.append(seq[start:i])
                start = j
            i = j
        else:
            i += 1
    if start < n:
        pieces.append(seq[start:])
    return pieces


# Named-record input of the CLIs (embed.py, mutagenesis.py): FASTA or a CSV with a `sequence` column.
FASTA_SUFFIXES = tuple(s + z for s in (".fa", ".fasta", ".fna", ".fas") for z in ("", ".gz", ".bgz"))


def read_csv(path: str) -> Iterator[tuple[str, str]]:
    """(name, canonical sequence) per row of a CSV with a `sequence` column (named by an `id` or
    `name` column, else the row number); sequences are checked like FASTA lines (file:line errors)."""
    with open(path, newline="", encoding="utf-8-sig") as f:  # a leading byte-order mark is not part of the header
        reader = csv.DictReader(f)
        try:
            if not reader.fieldnames or "sequence" not in reader.fieldnames:
                raise GenomeFormatError(f"{path}:1: header {reader.fieldnames}; expected a 'sequence' column")
            id_column = next((c for c in ("id", "name") if c in reader.fieldnames), None)
            for row_number, row in enumerate(reader, start=1):
                line = reader.line_num  # the line the row ends on, counted in the file (blank lines included)
                if None in row or any(v is None for v in row.values()):
                    raise GenomeFormatError(f"{path}:{line}: {len(row) - (None in row)} fields, expected {len(reader.fieldnames)} ({','.join(reader.fieldnames)})")
                seq = check_sequence(row["sequence"] or "", path, line)
                if not seq:
                    raise GenomeFormatError(f"{path}:{line}: empty sequence")
                yield (row[id_column] if id_column else str(row_number)), seq
        except UnicodeDecodeError:
            raise GenomeFormatError(f"{path}: bytes that are not UTF-8 text after line {reader.line_num}; expected a UTF-8 CSV") from None
        except csv.Error as e:
            raise GenomeFormatError(f"{path}:{reader.line_num}: malformed CSV ({e})") from None


def read_records(path: str) -> Iterator[tuple[str, str]]:
    """(name, sequence) for every record; an empty record is an error naming file and line."""
    if path.endswith(".csv"):
        yield from read_csv(path)
        return
    for record, seq in iter_records([path]):
        if not record.fasta and path.lower().endswith(FASTA_SUFFIXES):
            raise GenomeFormatError(
                f"{path}:{record.line}: expected a FASTA header line starting with '>' (the file name says FASTA); "
                "a file of one sequence per line must not be named .fa/.fasta"
            )
        if not seq:
            raise GenomeFormatError(f"{path}:{record.line}: record {record.name!r} has no sequence")
        yield record.name, seq
