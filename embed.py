"""Embed every sequence of a FASTA or CSV file with a DNABERT-2 model.

    python embed.py sequences.fa --output embeddings.npy [--model DIR_OR_HUB_ID] [--pooling mean]
    python embed.py table.csv --output embeddings.parquet --rc-average

Input: FASTA / FASTA.gz / bgzip (one embedding per record, named by its header) or a CSV with a
`sequence` column (named by an `id` or `name` column, else the row number). It is read as a
stream in chunks of --chunk-records. Each finished chunk is stored under OUTPUT.partial/, so a
run that is interrupted resumes where it stopped without recomputing. The final file is written
to a temporary name and renamed, so OUTPUT is never left truncated; an existing OUTPUT is
replaced only with --overwrite. The resume state records the input file, the model files and
every option that changes a vector: a partial run made with anything else is refused.
CSV sequences are checked like FASTA lines; a .fa/.fasta file without a '>' header is refused.
Output: .npy (float32, n x hidden, with the names in OUTPUT.ids.txt) or .parquet (columns id,
length_bp, embedding). Pooling, --layer and long-sequence windows: see embedding.py.
"""

import os
import sys
from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np

from dnabert2.chunked_output import ChunkStore, atomic_write, chunked, file_fingerprint
from dnabert2.cli import (
    REPO_ROOT, OutputArguments, ScriptParser, UsageError, at_least, load_pretrained, model_fingerprint, positional,
    refuse_existing_file, require_file, require_model, run,
)
from dnabert2.genome_io import GenomeFormatError, read_records

OUTPUT_SUFFIXES = (".npy", ".parquet")
# Options that never change a vector: left out of the resume fingerprint.
NOT_FINGERPRINTED = ("output", "batch_size")


@dataclass
class Args:
    input: str = field(metadata=positional(help="FASTA / FASTA.gz / bgzip or CSV with a 'sequence' column"))
    output: str = field(metadata={"help": ".npy or .parquet"})
    model: str = field(default=REPO_ROOT, metadata={"help": "model folder or Hub id (default: this repo)"})
    pooling: Literal["mean", "max", "cls"] = field(default="mean")
    rc_average: bool = field(default=False, metadata={"help": "average with the reverse complement"})
    batch_size: int = field(default=16, metadata=at_least(1))
    max_tokens: int = field(default=512, metadata=at_least(3, "tokens per window for long sequences ([CLS] and [SEP] included)"))
    chunk_records: int = field(default=256, metadata=at_least(1, "records per resumable chunk"))
    dtype: Literal["float32", "bfloat16"] = field(default="float32")
    layer: str = field(default="-1", metadata={
        "help": "hidden state (-1 = last, 0 = embedding layer) or a range averaged; write negative values as --layer=-4:"})


def parse_args(argv=None) -> tuple[Args, OutputArguments]:
    args, out = ScriptParser((Args, OutputArguments), description=__doc__).parse(argv)
    if not args.output.endswith(OUTPUT_SUFFIXES):
        raise UsageError(f"--output must end in .npy or .parquet, got {args.output}")
    from dnabert2.embedding import parse_layer

    try:
        parse_layer(args.layer)
    except ValueError as e:
        raise UsageError(str(e)) from None
    return args, out


def _fingerprint(args: Args) -> dict:
    """Everything a vector depends on: the input file, the model files and every vector-changing option."""
    options = {k: v for k, v in asdict(args).items() if k not in NOT_FINGERPRINTED}
    return {**options, "input_file": file_fingerprint(args.input), "model_files": model_fingerprint(args.model)}


def load_model(path: str, dtype: str):
    """The encoder of any DNABERT-2 checkpoint (MLM or classifier), with this repo's code.

    Extra heads are expected; an encoder that does not match its config is refused (cli.load_pretrained).
    """
    import torch

    from dnabert2.dna_tokenizer import load_tokenizer
    from dnabert2.modeling_bert import BertModel

    model = load_pretrained(BertModel, path, add_pooling_layer=False, dtype=getattr(torch, dtype)).eval()
    return model, load_tokenizer(path)


def main(argv=None) -> int:
    args, out = parse_args(argv)
    require_file(args.input)
    refuse_existing_file(args.output, out.overwrite)  # resuming from OUTPUT.partial/ is not overwriting
    require_model(args.model)
    store = ChunkStore(args.output, _fingerprint(args))
    try:
        done = embed_chunks(args, store)
    except BaseException:
        store.discard_if_empty()  # a run that failed before its first chunk leaves no work folder
        raise
    store.finish(lambda columns: write_output(args.output, columns))
    print(f"wrote {args.output}: {done:,} embeddings", file=sys.stderr)
    return 0


def embed_chunks(args: Args, store: ChunkStore) -> int:
    """Embed every chunk not finished by an earlier run; returns the number of records."""
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
    return done


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
    run(main)
