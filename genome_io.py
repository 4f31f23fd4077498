"""Reading DNA: streaming FASTA / FASTA.gz / bgzip / one-sequence-per-line text, windows.

Lives here, once, for the tokenizer trainer, pretraining and the embedding CLI: format detection,
validation with file:line errors, record streaming in bounded memory and fixed-size windows.
`canonical` and `reverse_complement` are re-exported from dna_alphabet.py for these callers.
Not here: the alphabet, complement or canonical tables (dna_alphabet.py), tokenization or anything
torch.
Also here: `record_index`, the (name, length) of every record of a file, cached in a folder keyed by the
file's absolute path, size and modification time, so a second start skips the full read; its cache
(`cached_index`, `file_key`) also keeps the row index of `datasets` sources (dataset_records.py).

Conventions
- Letters: the IUPAC nucleotide codes in either case, plus U (RNA) (dna_alphabet.IUPAC_LETTERS).
  Anything else is an error that names the file and line. Records are yielded canonical
  (dna_alphabet.canonical: upper case, U read as T, ambiguity codes RYKMSWBDHV read as N).
- A plain-text file holds one sequence per line; blank lines are skipped. A FASTA file starts with
  a '>' header; sequence lines may have any length.
- Compression is detected from the gzip magic bytes, not the file name; bgzip is gzip. A truncated
  or corrupt gzip stream is a GenomeFormatError naming the file.
- Files are read in blocks (_READ_CHUNK bytes): the sequence lines between two headers are checked
  and made canonical a block at a time; only a block holding something other than letters and line
  endings is taken apart line by line (which is where errors and their line numbers come from).
  The records, sequences and line numbers are those of a line-by-line reading.
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
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from .chunked_output import atomic_write
from .dna_alphabet import CANONICAL, IUPAC_LETTERS, canonical, reverse_complement

__all__ = [
    "GenomeFormatError", "Record", "IUPAC_LETTERS", "canonical", "reverse_complement",
    "iter_record_chunks", "iter_records", "iter_windows", "split_n_runs", "record_index", "default_index_cache", "file_key", "cached_index",
    "FASTA_SUFFIXES", "read_csv", "read_records",
]

logger = logging.getLogger(__name__)

_GZIP_MAGIC = b"\x1f\x8b"
_GZIP_ERRORS = (OSError, EOFError, zlib.error)  # truncated stream, bad CRC, corrupt block
_SNIFF_BYTES = 4096
# Files are read in blocks of about this many bytes. The sequence lines between two headers are
# checked and made canonical a block at a time (one bytes.translate), and a line longer than a block
# is read in pieces of this size, so memory stays bounded whatever the record or line length.
_READ_CHUNK = 1 << 18
_UTF8_MAX_BYTES = 4  # the longest UTF-8 character: a piece of a long line is never cut inside one
_LINE_FEED, _HEADER_START = ord("\n"), ord(">")
# Byte -> its canonical letter for the IUPAC letters, 0 for every other byte (0 is never a letter):
# translating a block makes it canonical and marks every byte that needs the per-line rules.
_CANONICAL_BYTES = bytes(ord(CANONICAL[chr(b)]) if chr(b) in IUPAC_LETTERS else 0 for b in range(256))


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


def _letter_error(bad: str, path: str, line: int) -> GenomeFormatError:
    what = "a carriage return without a line feed" if bad == "\r" else f"unexpected character {bad!r}"
    return GenomeFormatError(f"{path}:{line}: {what}; expected DNA letters (IUPAC codes) or, in a FASTA file, a '>' header line")


def _check_letters(piece: str, path: str, line: int) -> None:
    if not IUPAC_LETTERS.issuperset(piece):
        raise _letter_error(next(c for c in piece if c not in IUPAC_LETTERS), path, line)


def check_sequence(seq: str, path: str, line: int) -> str:
    """`seq` (surrounding whitespace removed) in canonical form, or a GenomeFormatError naming file and line."""
    seq = seq.strip()
    _check_letters(seq, path, line)
    return canonical(seq)


class _BlockReader:
    """One file's lines, read a block at a time: header lines, sequence lines, blank lines.

    State: buffer[pos:] is read and not yet consumed, `line` is the file's line number at pos and
    `line_start` is False inside a line longer than a block. Such a line is read in block-sized
    pieces, and `line_letters` / `line_space` carry what its earlier pieces held (letters yet; the
    first white space after them), so that it is checked exactly as a whole line would be.

    Sequence lines between two headers go through `sequence` a block at a time: one bytes.translate
    checks and canonicalises a block of letters and line endings; only a block holding anything
    else is taken apart line by line (`_line_letters`), which is where every error comes from.
    """

    def __init__(self, path: str, block_bytes: int):
        self.path, self.block = path, block_bytes
        self.file = _open_binary(path)
        self.buffer, self.pos, self.line, self.line_start, self.eof = b"", 0, 1, True, False
        self.line_letters, self.line_space = False, ""
        self.read_error: GenomeFormatError | None = None  # raised once the whole lines read before it are used
        self.any_sequence = False  # a letter was yielded (for the "headers but no sequence" error)
        try:
            self._refill()
        except GenomeFormatError:
            self.file.close()
            raise
        if self.buffer.startswith(codecs.BOM_UTF8):
            self.pos = len(codecs.BOM_UTF8)

    def __enter__(self) -> "_BlockReader":
        return self

    def __exit__(self, *exc) -> None:
        self.file.close()

    # --- bytes -----------------------------------------------------------------------------------

    def _refill(self, whole_line: bool = False) -> None:
        """Called when the unconsumed bytes hold no line feed: read on until they hold a block and one
        character more (whole_line: a line feed), or the file ends.

        A failing gzip read is raised once the whole lines read before it are used up, as a line
        reader would raise it; the message counts those lines."""
        if self.read_error:
            raise self.read_error
        parts = [self.buffer[self.pos:]]
        held, newline = len(parts[0]), False
        while not self.eof and (not newline if whole_line else held < self.block + _UTF8_MAX_BYTES):
            try:
                data = self.file.read1(self.block)  # one raw read: a failing read loses no earlier bytes
            except _GZIP_ERRORS as e:
                complete = self.line - 1 + sum(p.count(b"\n") for p in parts)
                self.read_error = GenomeFormatError(f"{self.path}: truncated or corrupt gzip/bgzip data after line {complete} ({e})")
                if not any(b"\n" in p for p in parts):
                    raise self.read_error from None
                break
            self.eof = not data
            parts.append(data)
            held, newline = held + len(data), newline or b"\n" in data
        self.buffer, self.pos = b"".join(parts), 0

    def _line_end(self, whole_line: bool = False) -> int:
        """Where the next line ends (its line feed or the end of the file); unless whole_line, where
        the next block-sized piece of a line longer than a block ends."""
        if self.buffer.find(b"\n", self.pos) < 0:
            self._refill(whole_line)
        return self._end_in_buffer()

    def _end_in_buffer(self) -> int:
        """_line_end within what is read (after _refill)."""
        end = self.buffer.find(b"\n", self.pos)
        if end >= 0:
            return end
        if self.eof or len(self.buffer) - self.pos < self.block + _UTF8_MAX_BYTES:
            return len(self.buffer)  # the last line of the file, or a whole header line
        end = self.pos + self.block  # a piece of a long line, never cut inside a UTF-8 character
        while end < self.pos + self.block + _UTF8_MAX_BYTES - 1 and self.buffer[end] & 0xC0 == 0x80:
            end += 1
        return end

    def _advance(self, end: int, lines: int) -> bool:
        """Consume buffer[pos:end] (holding `lines` line feeds) and a line feed at `end`, if there is
        one; True when a line ended at `end` (its line feed or the end of the file)."""
        at_feed = end < len(self.buffer) and self.buffer[end] == _LINE_FEED
        if end > self.pos:
            self.line_start = self.buffer[end - 1] == _LINE_FEED
        if at_feed:
            self.line_start = True
        if self.line_start:  # the next line starts with nothing seen
            self.line_letters, self.line_space = False, ""
        ended = at_feed or (self.eof and end == len(self.buffer))
        self.pos, self.line = end + at_feed, self.line + lines + at_feed
        return ended

    def _decode(self, raw: bytes, line: int) -> str:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise GenomeFormatError(
                f"{self.path}:{line}: bytes that are not UTF-8 text; expected FASTA or one DNA sequence per line"
            ) from None

    def _line_letters(self, raw: bytes, line: int) -> str:
        """The canonical letters of a line, or of the next piece of a long line: the line loses its
        surrounding white space, the rest must be IUPAC letters (else a GenomeFormatError naming the
        first other character, as for the whole line)."""
        text = self._decode(raw, line)
        if not self.line_letters:
            text = text.lstrip()
        body = text.rstrip()
        if body:
            if self.line_space:
                raise _letter_error(self.line_space, self.path, line)
            _check_letters(body, self.path, line)
            self.line_letters = True
        if len(body) < len(text) and self.line_letters and not self.line_space:
            self.line_space = text[len(body)]
        return canonical(body)

    # --- lines -----------------------------------------------------------------------------------

    def skip_blank_lines(self) -> bool:
        """Consume lines (or pieces of a long line) of white space only; False when nothing else is left."""
        while True:
            end = self._line_end()
            if self.pos == end == len(self.buffer) and self.eof:
                return False
            if self._decode(self.buffer[self.pos:end], self.line).strip():
                return True
            self._advance(end, 0)

    def at_header(self) -> bool:
        if self.pos == len(self.buffer) and not self.eof:
            self._refill()
        return self.line_start and self.pos < len(self.buffer) and self.buffer[self.pos] == _HEADER_START

    def header(self) -> tuple[str, int]:
        """(the header line without '>' and surrounding white space, its line number); consumes the line."""
        line, end = self.line, self._line_end(whole_line=True)
        text = self._decode(self.buffer[self.pos:end], line)
        self._advance(end, 0)
        return text[1:].strip(), line

    def line_pieces(self) -> Iterator[str]:
        """Canonical pieces of the current line (a record of a one-sequence-per-line file)."""
        while True:
            line, end = self.line, self._line_end()
            letters = self._line_letters(self.buffer[self.pos:end], line)
            ended = self._advance(end, 0)
            if letters:
                yield letters
            if ended:
                return

    def sequence(self) -> Iterator[str]:
        """Canonical pieces of the sequence lines from here to the next header line or the end of the file."""
        while True:
            if self.buffer.find(b"\n", self.pos) < 0:
                self._refill()
            buffer, start = self.buffer, self.pos
            if start == len(buffer) or (self.line_start and buffer[start] == _HEADER_START):
                return
            header = buffer.find(b"\n>", start)
            if header >= 0:
                end = header + 1
            else:
                end = buffer.rfind(b"\n", start) + 1
                if end == 0:  # no whole line left: the last line of the file, or a piece of a long line
                    end = self._end_in_buffer()
            piece, error = self._canonical_lines(buffer[start:end], self.line)
            self._advance(end, buffer.count(b"\n", start, end))
            if piece:
                self.any_sequence = True
                yield piece
            if error:
                raise error

    def _canonical_lines(self, lines: bytes, first_line: int) -> tuple[str, GenomeFormatError | None]:
        """(canonical letters, the error of the first bad line or None) of `lines`: sequence lines from
        pos, the last one maybe a piece of a long line. The letters before a bad line are kept."""
        if self.line_start or not self.line_space:  # no white space inside a line so far
            checked = lines.replace(b"\r\n", b"\n") if b"\r" in lines else lines
            letters = checked.translate(_CANONICAL_BYTES, b"\n")
            if b"\x00" not in letters:  # only letters and line endings: the whole block at once
                if not lines.endswith(b"\n"):
                    self.line_letters = True  # the last (unfinished) line has letters
                return letters.decode("ascii"), None
        kept = []
        for offset, raw in enumerate(lines.split(b"\n")):
            if offset:  # a line feed: a new line starts
                self.line_letters, self.line_space = False, ""
            try:
                kept.append(self._line_letters(raw, first_line + offset))
            except GenomeFormatError as error:
                return "".join(kept), error
        return "".join(kept), None


def iter_record_chunks(path: str, block_bytes: int = _READ_CHUNK) -> Iterator[tuple[Record, Iterator[str]]]:
    """Stream the records of one file as (record, iterator of canonical sequence pieces).

    Consume each piece iterator before advancing to the next record (what is left unread is skipped).
    The file is read in blocks of `block_bytes` (the default serves; tests pass tiny ones to put
    every boundary inside a line), so memory is bounded by a few blocks whatever the record or line
    length; the pieces are up to a block long and do not follow the file's lines. Raises
    GenomeFormatError for non-DNA content and for an input with no sequence at all.
    """
    if block_bytes < 1:
        raise ValueError(f"block_bytes must be >= 1, got {block_bytes}")
    with _BlockReader(path, block_bytes) as reader:
        if not reader.skip_blank_lines():
            raise GenomeFormatError(f"{path}: empty file, expected FASTA or one DNA sequence per line")
        if not reader.at_header():  # one sequence per line: every non-blank line is a record
            while reader.skip_blank_lines():
                line, pieces = reader.line, reader.line_pieces()
                yield Record(path, f"line {line}", line, fasta=False), pieces
                for _ in pieces:  # what the caller left unread
                    pass
            return
        while reader.at_header():
            name, line = reader.header()
            pieces = reader.sequence()
            yield Record(path, name, line), pieces
            for _ in pieces:  # what the caller left unread
                pass
        if not reader.any_sequence:
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


def file_key(path: str) -> dict:
    """What identifies one version of a file for an index cache: absolute path, size, mtime (ns)."""
    stat = os.stat(path)
    return {"path": os.path.abspath(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "version": _INDEX_VERSION}


def cached_index(key: dict, cache_dir: str | None, build: Callable[[], list]) -> list:
    """`build()`, or its result cached under CACHE_DIR/<sha1 of key>.json by an earlier call with the same key.

    The entry is written atomically (temporary name, then rename). A changed input has another key,
    so a stale index is never used; an unreadable or corrupt entry is logged and rebuilt. Without
    `cache_dir`, `build()` every time. The result must be JSON: a list of lists (tuples come back as lists).
    """
    if not cache_dir:
        return build()
    entry = os.path.join(cache_dir, hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest() + ".json")
    if os.path.isfile(entry):
        try:
            with open(entry) as f:
                cached = json.load(f)
            if cached["key"] == key:
                return cached["records"]
            logger.warning("record index %s belongs to another input version; rebuilding it", entry)
        except (OSError, ValueError, KeyError, TypeError) as e:
            logger.warning("record index %s is unreadable (%s); rebuilding it", entry, e)
    records = build()
    os.makedirs(cache_dir, exist_ok=True)

    def write(tmp: str) -> None:
        with open(tmp, "w") as f:
            json.dump({"key": key, "records": records}, f)

    atomic_write(entry, write)
    return records


def record_index(path: str, cache_dir: str | None = None) -> list[tuple[str, int]]:
    """(name, length in bp) of every record of `path`, in file order; cached by `file_key` (see cached_index)."""

    def build() -> list:
        return [(record.name, sum(len(p) for p in pieces)) for record, pieces in iter_record_chunks(path)]

    return [(name, length) for name, length in cached_index(file_key(path), cache_dir, build)]


def iter_windows(paths: Iterable[str], window: int, stride: int | None = None) -> Iterator[tuple[Record, int, str]]:
    """Stream (record, start, window) tiles of at most `window` bp over every record of every file.

    Consecutive tiles start `stride` (default: `window`) apart; the last tile of a record may be
    shorter. FASTA line breaks never cut a tile. Memory is bounded by window + a few read blocks.
    """
    if window < 1:
        raise ValueError(f"window must be >= 1 bp, got {window}")
    stride = window if stride is None else stride
    if not 1 <= stride <= window:
        raise ValueError(f"stride must be in [1, window={window}], got {stride}")
    for path in paths:
        for record, pieces in iter_record_chunks(str(path)):
            # Tiles are sliced at a moving offset `at`, so a block-sized piece is copied once, not once per tile.
            buffer, at, start = "", 0, 0
            for piece in pieces:
                buffer, at = buffer[at:] + piece, 0
                while len(buffer) - at >= window:
                    yield record, start, buffer[at : at + window]
                    at, start = at + stride, start + stride
            rest = buffer[at:]
            if rest and (start == 0 or len(rest) > window - stride):
                yield record, start, rest


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
