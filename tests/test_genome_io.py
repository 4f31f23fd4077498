"""genome_io's block reader: the records of plain, gzip and bgzip FASTA against an independent reading.

The reference below reads a FASTA text line by line with nothing from genome_io or dna_alphabet;
the edge-case file is also checked against literal values. Every case runs with tiny read blocks
(1, 2, 3, 7 bytes), so headers, line endings, CRLF pairs and UTF-8 characters fall across block
boundaries, and with the default block.
"""

import gzip
import random
import zlib

import pytest
from Bio import bgzf

from dnabert2.genome_io import GenomeFormatError, iter_record_chunks
from helpers import assert_windows_stream_in_bounded_memory

BLOCKS = [1, 2, 3, 7, None]  # None: the default block
AMBIGUITY = "RYKMSWBDHV"


def reference_records(data: bytes) -> list[tuple[str, int, str]]:
    """(name, header line, canonical sequence) per record of a valid FASTA file, read line by line."""
    text = data.decode("utf-8")
    text = text[1:] if text.startswith("\ufeff") else text
    records = []
    for number, line in enumerate(text.split("\n"), start=1):
        if line.startswith(">"):
            records.append((line[1:].strip(), number, []))
        elif line.strip():
            records[-1][2].append(line.strip())
    to_n = str.maketrans(AMBIGUITY, "N" * len(AMBIGUITY))
    return [(name, number, "".join(lines).upper().replace("U", "T").translate(to_n)) for name, number, lines in records]


def write(path, data: bytes, compression: str) -> str:
    if compression == "gzip":
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data))
    elif compression == "bgzip":  # BGZF: a series of gzip members of at most 64 KiB each
        path = path.with_name(path.name + ".bgz")
        with bgzf.BgzfWriter(str(path), "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)
    return str(path)


def read(path: str, block: int | None) -> list[tuple[str, int, str]]:
    kwargs = {} if block is None else {"block_bytes": block}
    return [(r.name, r.line, "".join(pieces)) for r, pieces in iter_record_chunks(path, **kwargs)]


EDGE = (
    "\n"  # 1: a blank line before the first header
    ">chr1 first record \u03bb\r\n"  # 2: UTF-8 header, CRLF
    "ACGTacgtNNnn\r\n"  # 3
    "\r\n"  # 4: blank (CRLF)
    "  \t\n"  # 5: white space only
    "uuUURYKMSWBDHVrykmswbdhv\n"  # 6: RNA and ambiguity codes, both cases
    "  ACGT  \n"  # 7: surrounding white space
    ">empty record\n"  # 8
    ">chr2\n"  # 9
    "GATTACA\n"  # 10
    "\n"  # 11
    ">chr3 no final line feed\n"  # 12
    "ccc\n"  # 13
    "GGG"  # 14
).encode()
EDGE_RECORDS = [
    ("chr1 first record \u03bb", 2, "ACGTACGTNNNN" + "TTTT" + "N" * 20 + "ACGT"),
    ("empty record", 8, ""),
    ("chr2", 9, "GATTACA"),
    ("chr3 no final line feed", 12, "CCCGGG"),
]


@pytest.mark.parametrize("compression", ["plain", "gzip", "bgzip"])
@pytest.mark.parametrize("block", BLOCKS)
def test_edge_cases_read_as_the_literal_records(tmp_path, compression, block):
    assert reference_records(EDGE) == EDGE_RECORDS  # the reference itself, against the literals
    path = write(tmp_path / "edge.fa", EDGE, compression)
    assert read(path, block) == EDGE_RECORDS
    bom = write(tmp_path / "bom.fa", b"\xef\xbb\xbf" + EDGE.lstrip(b"\n"), compression)
    assert read(bom, block) == [(name, line - 1, seq) for name, line, seq in EDGE_RECORDS]


def random_fasta(rng: random.Random) -> bytes:
    """A valid FASTA text: random headers, line lengths, case, blank lines and line endings."""
    newline = rng.choice(["\n", "\r\n"])
    lines = []
    for record in range(rng.randint(1, 5)):
        lines.append(">" + rng.choice(["r", "chr", "seq \u00e9", " spaced name "]) + str(record))
        for _ in range(rng.randint(0, 6)):
            if rng.random() < 0.15:
                lines.append(rng.choice(["", " ", "\t "]))
            else:
                seq = "".join(rng.choice("ACGTacgtNnUuRy") for _ in range(rng.randint(1, 90)))
                lines.append(rng.choice(["", " "]) + seq + rng.choice(["", "", "  "]))
    return (newline.join(lines) + rng.choice(["", newline])).encode()


@pytest.mark.parametrize("compression", ["plain", "gzip", "bgzip"])
def test_random_fasta_reads_as_the_reference(tmp_path, compression):
    rng = random.Random(17)
    for case in range(60):
        data = random_fasta(rng)
        path = write(tmp_path / f"r{case}.fa", data, compression)
        expected = reference_records(data)
        for block in BLOCKS:
            assert read(path, block) == expected, (case, block, data[:200])


@pytest.mark.parametrize("compression", ["plain", "gzip", "bgzip"])
def test_a_record_spanning_many_blocks_and_bgzf_members(tmp_path, compression):
    rng = random.Random(3)
    long = "".join(rng.choice("ACGTacgtN") for _ in range(150_000))  # > 2 BGZF members of 64 KiB
    data = (">long\n" + "\n".join(long[i : i + 70] for i in range(0, len(long), 70)) + "\n>short\nAC\n").encode()
    one_line = (">long\n" + long + "\n>short\nAC\n").encode()  # a line far longer than a block
    for name, text in (("lines.fa", data), ("one_line.fa", one_line)):
        path = write(tmp_path / name, text, compression)
        short_line = text[: text.index(b">short")].count(b"\n") + 1
        for block in (1000, 4093, None):
            assert read(path, block) == [("long", 1, long.upper()), ("short", short_line, "AC")]


def test_one_sequence_per_line_files_read_as_literal_records(tmp_path):
    path = tmp_path / "plain.txt"
    path.write_bytes(b"\nACGT\r\n  ggaa \n\nuRy\n")
    for block in BLOCKS:
        records = [(r.name, r.line, r.fasta, "".join(p)) for r, p in iter_record_chunks(str(path), **({} if block is None else {"block_bytes": block}))]
        assert records == [("line 2", 2, False, "ACGT"), ("line 3", 3, False, "GGAA"), ("line 5", 5, False, "TNN")]


@pytest.mark.parametrize(
    "data,message",
    [
        (b">a\nACGT\nAC GT\n", r"bad\.fa:3: unexpected character ' '"),
        (b">a\nACGT\nACGT   ACGT\n", r"bad\.fa:3: unexpected character ' '"),
        (b">a\nACGT\nACGT\rACGT\n", r"bad\.fa:3: a carriage return without a line feed"),
        (b">a\r\nACGT\r\n\r\nACGX\r\n", r"bad\.fa:4: unexpected character 'X'"),
        (b">a\nACGT\nAC\xc3\xa9GT\n", r"bad\.fa:3: unexpected character '\u00e9'"),
        (b">a\nACGT\n\xff\xfe\n", r"bad\.fa:3: bytes that are not UTF-8 text"),
        (b">a\n>b\n\n", r"bad\.fa: FASTA headers but no sequence lines"),
        (b"\n \n", r"bad\.fa: empty file"),
    ],
)
@pytest.mark.parametrize("block", BLOCKS)
def test_bad_input_names_the_file_line_and_what_was_expected(tmp_path, data, message, block):
    path = tmp_path / "bad.fa"
    path.write_bytes(data)
    with pytest.raises(GenomeFormatError, match=message):
        read(str(path), block)


@pytest.mark.parametrize("block", [1, 7, None])
def test_truncated_gzip_counts_the_whole_lines_before_the_cut(tmp_path, block):
    rng = random.Random(5)
    data = (">a\n" + "\n".join("".join(rng.choice("ACGT") for _ in range(60)) for _ in range(400)) + "\n").encode()
    packed = gzip.compress(data)
    path = tmp_path / "cut.fa.gz"
    path.write_bytes(packed[: len(packed) // 2])
    complete = zlib.decompressobj(31).decompress(path.read_bytes()).count(b"\n")  # independent of gzip.open
    seen = []
    with pytest.raises(GenomeFormatError, match=rf"cut\.fa\.gz: truncated or corrupt gzip/bgzip data after line {complete} "):
        for _, pieces in iter_record_chunks(str(path), **({} if block is None else {"block_bytes": block})):
            seen.extend(pieces)
    whole_lines = data.decode().split("\n", 1)[1].replace("\n", "")[: (complete - 1) * 60]
    assert "".join(seen).startswith(whole_lines)  # every whole line before the error
    if block is None:  # lines within a block: nothing of the cut line
        assert "".join(seen) == whole_lines


def test_a_record_left_unread_is_skipped(tmp_path):
    path = tmp_path / "three.fa"
    path.write_text(">a\nACGT\nACGT\n>b\nGG\n>c\nTT\n")
    assert [r.name for r, _ in iter_record_chunks(str(path), block_bytes=3)] == ["a", "b", "c"]


def test_block_size_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="block_bytes must be >= 1, got 0"):
        next(iter_record_chunks(str(tmp_path / "x.fa"), block_bytes=0))


def test_a_genome_on_one_line_streams_in_bounded_memory(tmp_path):
    path = tmp_path / "one_line.fa.gz"
    with gzip.open(path, "wt") as f:  # 6 Mbp in one record, no line breaks
        f.write(">big\n" + "ACGTTGCAAC" * 600_000 + "\n")
    assert_windows_stream_in_bounded_memory(path, 6_000_000)
