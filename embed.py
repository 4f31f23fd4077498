"""Embed every sequence of a FASTA or CSV file with a DNABERT-2 model.

    python embed.py sequences.fa --output embeddings.npy [--model DIR_OR_HUB_ID] [--pooling mean]
    python embed.py table.csv --output embeddings.parquet --rc-average

Input: FASTA / FASTA.gz / bgzip (one embedding per record, named by its header) or a CSV with a
`sequence` column (named by an `id` or `name` column, else the row number). It is read as a
stream in chunks of --chunk-records. Each finished chunk is stored under OUTPUT.partial/, so a
run that is interrupted resumes where it stopped without recomputing. The final file is written
to a temporary name and renamed, so OUTPUT is never left truncated.
Output: .npy (float32, n x hidden, with the names in OUTPUT.ids.txt) or .parquet (columns id,
length_bp, embedding). Pooling, --layer and long-sequence windows: see embedding.py.
"""

import argparse
import csv
import os
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import numpy as np

from dnabert2.chunked_output import ChunkStore, atomic_write, chunked
from dnabert2.genome_io import GenomeFormatError, iter_records

REPO_ROOT = os.path.dirname(os.path.abspath(__file__))


@dataclass
class Args:
    input: str
    output: str
    model: str = REPO_ROOT
    pooling: str = "mean"
    rc_average: bool = False
    batch_size: int = 16
    max_tokens: int = 512
    chunk_records: int = 256
    dtype: str = "float32"
    layer: str = "-1"


def parse_args(argv=None) -> Args:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input")
    p.add_argument("--output", required=True, help=".npy or .parquet")
    p.add_argument("--model", default=REPO_ROOT, help="model folder or Hub id (default: this repo)")
    p.add_argument("--pooling", default="mean", choices=["mean", "max", "cls"])
    p.add_argument("--rc-average", action="store_true", help="average with the reverse complement")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--max-tokens", type=int, default=512, help="tokens per window for long sequences")
    p.add_argument("--chunk-records", type=int, default=256, help="records per resumable chunk")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--layer", default="-1", help="hidden state (-1 = last, 0 = embedding layer) or a range averaged; write negative values as --layer=-4:")
    ns = p.parse_args(argv)
    args = Args(**{k.replace("-", "_"): v for k, v in vars(ns).items()})
    if not args.output.endswith((".npy", ".parquet")):
        p.error(f"--output must end in .npy or .parquet, got {args.output}")
    from dnabert2.embedding import parse_layer

    try:
        parse_layer(args.layer)
    except ValueError as e:
        p.error(str(e))
    return args


def read_csv(path: str) -> Iterator[tuple[str, str]]:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or "sequence" not in reader.fieldnames:
            raise GenomeFormatError(f"{path}:1: header {reader.fieldnames}; expected a 'sequence' column")
        id_column = next((c for c in ("id", "name") if c in reader.fieldnames), None)
        for line, row in enumerate(reader, start=2):
            seq = (row["sequence"] or "").strip()
            if not seq:
                raise GenomeFormatError(f"{path}:{line}: empty sequence")
            yield (row[id_column] if id_column else str(line - 1)), seq


def read_records(path: str) -> Iterator[tuple[str, str]]:
    """(name, sequence) for every record; an empty record is an error naming file and line."""
    if path.endswith(".csv"):
        yield from read_csv(path)
        return
    for record, seq in iter_records([path]):
        if not seq:
            raise GenomeFormatError(f"{path}:{record.line}: record {record.name!r} has no sequence")
        yield record.name, seq


def _fingerprint(args: Args) -> dict:
    options = {k: v for k, v in asdict(args).items() if k not in ("output", "batch_size")}
    stat = os.stat(args.input)
    return {**options, "input_size": stat.st_size, "input_mtime": stat.st_mtime}


def load_model(path: str, dtype: str):
    """The encoder of any DNABERT-2 checkpoint (MLM or classifier), with this repo's code."""
    import torch
    from transformers.utils import logging

    from dnabert2.dna_tokenizer import load_tokenizer
    from dnabert2.modeling_bert import BertModel

    verbosity = logging.get_verbosity()
    logging.set_verbosity_error()  # the heads a checkpoint carries beyond the encoder are expected extras
    try:
        model = BertModel.from_pretrained(path, add_pooling_layer=False, dtype=getattr(torch, dtype)).eval()
    finally:
        logging.set_verbosity(verbosity)
    return model, load_tokenizer(path)


def main(argv=None) -> int:
    args = parse_args(argv)
    if not os.path.isfile(args.input):
        raise FileNotFoundError(f"{args.input}: no such file")
    store = ChunkStore(args.output, _fingerprint(args))
    model = tokenizer = None
    done = computed = 0
    for k, chunk in enumerate(chunked(read_records(args.input), args.chunk_records)):
        done += len(chunk)
        if store.done(k):
            continue  # finished by an earlier run
        if model is None:
            model, tokenizer = load_model(args.model, args.dtype)
        names, seqs = zip(*chunk)
        vectors = model.embed(
            tokenizer, list(seqs), pooling=args.pooling, batch_size=args.batch_size,
            rc_average=args.rc_average, max_tokens=args.max_tokens, layer=args.layer,
        )
        lengths = np.array([len(s) for s in seqs], dtype=np.int64)
        store.save(k, {"ids": np.array(names), "vectors": vectors, "lengths": lengths})
        computed += len(chunk)
        print(f"{done:,} records embedded ({computed:,} in this run)", file=sys.stderr)
    if done == 0:
        raise GenomeFormatError(f"{args.input}: no records")
    store.finish(lambda columns: write_output(args.output, columns))
    print(f"wrote {args.output}: {done:,} embeddings", file=sys.stderr)
    return 0


def write_output(output: str, columns: dict[str, np.ndarray]) -> None:
    vectors = columns["vectors"].astype(np.float32)
    if output.endswith(".npy"):
        atomic_write(output, lambda p: _save_npy(p, vectors))
        atomic_write(output + ".ids.txt", lambda p: _write_lines(p, columns["ids"]))
        return
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({
        "id": pa.array(columns["ids"].tolist()),
        "length_bp": pa.array(columns["lengths"]),
        "embedding": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), vectors.shape[1]),
    })
    atomic_write(output, lambda p: pq.write_table(table, p))


def _save_npy(path: str, array: np.ndarray) -> None:
    with open(path, "wb") as f:  # a file object: np.save would append ".npy" to a temporary name
        np.save(f, array)


def _write_lines(path: str, values) -> None:
    with open(path, "w") as f:
        f.writelines(f"{v}\n" for v in values)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (GenomeFormatError, FileNotFoundError, RuntimeError) as e:
        sys.exit(f"embed.py: error: {e}")
