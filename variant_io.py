"""Reading variant tables: VCF (plain, gzip or bgzip) and CSV/TSV with chrom,pos,ref,alt.

Lives here: streaming the rows of a variant file with their line numbers, one row per ALT allele,
and sorting out the ALTs that cannot be scored as sequence (symbolic `<DEL>`, breakends, `*`, `.`):
those are counted by kind, never silently dropped. Not here: checks against the reference genome
or scoring (variant_effects.py), writing results (chunked_output.py).

Output columns: for a VCF, chrom, pos, id, ref, alt (one row per ALT); for a CSV/TSV, every input
column as it was (pos must be an integer; `id` and `label` are optional).
"""

from __future__ import annotations

import csv
import gzip
import io
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

from .variant_effects import Variant

VCF_COLUMNS = ("chrom", "pos", "id", "ref", "alt")
REQUIRED_CSV_COLUMNS = ("chrom", "pos", "ref", "alt")
_GZIP_MAGIC = b"\x1f\x8b"


class VariantInputError(ValueError):
    """Malformed variant input; the message names the file, line and field."""


@dataclass
class VariantRow:
    line: int  # 1-based line of the input file
    variant: Variant
    fields: dict[str, str]  # the input columns, as they go to the output


def unscorable_alt_kind(alt: str) -> str | None:
    """Why an ALT is not a sequence allele ('symbolic', 'breakend', 'spanning deletion', 'missing'), or None."""
    if alt.startswith("<") and alt.endswith(">"):
        return "symbolic"
    if "[" in alt or "]" in alt or (len(alt) > 1 and (alt.startswith(".") or alt.endswith("."))):
        return "breakend"
    if alt == "*":
        return "spanning deletion"
    if alt == ".":
        return "missing"
    return None


def _open(path: str) -> io.TextIOBase:
    with open(path, "rb") as f:
        compressed = f.read(2) == _GZIP_MAGIC  # bgzip is gzip
    return gzip.open(path, "rt", newline="") if compressed else open(path, newline="")


def is_vcf(path: str) -> bool:
    with _open(path) as f:
        first = f.readline()
    return first.startswith("##fileformat=VCF") or first.startswith("#CHROM")


def read_variants(path: str, skipped: Counter) -> Iterator[VariantRow]:
    """Every scorable (row, variant) of a VCF or CSV/TSV; unscorable ALTs are added to `skipped` by kind."""
    yield from (_read_vcf if is_vcf(path) else _read_table)(path, skipped)


def _read_vcf(path: str, skipped: Counter) -> Iterator[VariantRow]:
    with _open(path) as f:
        header_seen = False
        for line_no, line in enumerate(f, start=1):
            line = line.rstrip("\r\n")
            if line.startswith("##") or not line.strip():
                continue
            if line.startswith("#"):
                header_seen = True
                continue
            if not header_seen:
                raise VariantInputError(f"{path}:{line_no}: data line before the #CHROM header line")
            cols = line.split("\t")
            if len(cols) < 5:
                raise VariantInputError(f"{path}:{line_no}: {len(cols)} tab-separated fields; a VCF line needs at least 5 (CHROM POS ID REF ALT)")
            chrom, pos, vid, ref, alts = cols[:5]
            position = _position(pos, path, line_no)
            for alt in alts.split(","):
                kind = unscorable_alt_kind(alt)
                if kind is not None:
                    skipped[kind] += 1
                    continue
                yield VariantRow(line_no, Variant(chrom, position, ref.upper(), alt.upper()),
                                 {"chrom": chrom, "pos": pos, "id": vid, "ref": ref, "alt": alt})


def _read_table(path: str, skipped: Counter) -> Iterator[VariantRow]:
    name = path[:-3] if path.endswith((".gz", ".bgz")) else path
    delimiter = "\t" if name.endswith(".tsv") or name.endswith(".txt") else ","
    with _open(path) as f:
        reader = csv.DictReader(f, delimiter=delimiter)
        missing = [c for c in REQUIRED_CSV_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise VariantInputError(
                f"{path}:1: header {reader.fieldnames} lacks {missing}; expected columns {list(REQUIRED_CSV_COLUMNS)} "
                "(optional: id, label), or a VCF"
            )
        for line_no, row in enumerate(reader, start=2):
            fields = {k: (v or "").strip() for k, v in row.items() if k is not None}
            position = _position(fields["pos"], path, line_no)
            kind = unscorable_alt_kind(fields["alt"])
            if kind is not None:
                skipped[kind] += 1
                continue
            yield VariantRow(line_no, Variant(fields["chrom"], position, fields["ref"].upper(), fields["alt"].upper()), fields)


def _position(value: str, path: str, line: int) -> int:
    try:
        return int(value)
    except ValueError:
        raise VariantInputError(f"{path}:{line}: pos {value!r} is not an integer; expected a 1-based position") from None
