"""Predict with a fine-tuned DNABERT-2 folder on new sequences.

    python predict.py MODEL INPUT --output OUT.csv [--rc_tta] [--batch_size 16] [--dtype bfloat16]
    python predict.py runs/my_task data/own_data/classification/test.csv --output preds.parquet

MODEL: a folder written by finetune_gue.py (or its LoRA `merged/` folder, or the LoRA adapter
folder itself, with --base_model when the adapters do not name a reachable base).
INPUT: FASTA / FASTA.gz / bgzip (the output keeps an `id` column) or CSV/TSV with a `sequence`
column (every other column is carried through). OUT: .csv, .tsv or .parquet, one row per record.
Columns and window rules: prediction.py. Multi-label thresholds: --threshold for all labels, else
the per-label thresholds tuned on dev and saved in MODEL/task.json, else 0.5.
Finished chunks are kept in OUT.partial/, so an interrupted run resumes without recomputing; OUT is
written atomically, and an existing OUT is refused unless --overwrite.
"""

import os
import sys
from dataclasses import asdict, dataclass, field

import numpy as np
from transformers import HfArgumentParser

from dnabert2.chunked_output import TABLE_SUFFIXES, ChunkStore, chunked, file_fingerprint, write_table
from dnabert2.cli import run
from dnabert2.genome_io import GenomeFormatError
from dnabert2.prediction import DEFAULT_MAX_LENGTH, load_predictor, output_columns, read_inputs

POSITIONAL = ("model", "input")


@dataclass
class PredictArguments:
    model: str = field(metadata={"help": "fine-tuned folder (finetune_gue.py output, LoRA merged/ or adapters)"})
    input: str = field(metadata={"help": "FASTA, FASTA.gz, CSV or TSV with a 'sequence' column"})
    output: str = field(metadata={"help": ".csv, .tsv or .parquet"})
    base_model: str | None = field(default=None, metadata={"help": "base model of a LoRA adapter folder"})
    batch_size: int = field(default=16)
    max_length: int | None = field(default=None, metadata={
        "help": "tokens per window, [CLS] and [SEP] included (default: the length the model was fine-tuned on, else 512)"})
    rc_tta: bool = field(default=False, metadata={"help": "average with the reverse complement's logits"})
    dtype: str = field(default="float32", metadata={"choices": ["float32", "bfloat16", "float16"]})
    threshold: float | None = field(default=None, metadata={"help": "multi-label: one threshold for every label"})
    chunk_records: int = field(default=256, metadata={"help": "records per resumable chunk"})
    overwrite: bool = field(default=False, metadata={"help": "replace an existing output file"})


def parse_args(argv: list[str]) -> PredictArguments:
    """MODEL and INPUT may be given positionally (predict.py MODEL INPUT --output OUT)."""
    argv = list(argv)
    for name in POSITIONAL:
        if argv and not argv[0].startswith("-"):
            argv = argv[1:] + [f"--{name}", argv[0]]
    (args,) = HfArgumentParser(PredictArguments).parse_args_into_dataclasses(args=argv)
    if not args.output.endswith(TABLE_SUFFIXES):
        raise ValueError(f"--output {args.output}: expected one of {TABLE_SUFFIXES}")
    return args


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if os.path.exists(args.output) and not args.overwrite:
        raise FileExistsError(f"{args.output} exists; pass --overwrite to replace it")
    if not os.path.exists(args.input):
        raise FileNotFoundError(f"{args.input}: no such file")
    options = {k: v for k, v in asdict(args).items() if k not in ("output", "batch_size", "overwrite")}
    fingerprint = {**options, "input_file": file_fingerprint(args.input), "model_files": file_fingerprint(args.model) if os.path.exists(args.model) else args.model}
    store = ChunkStore(args.output, fingerprint)
    predictor = None
    from tqdm.auto import tqdm

    bar = tqdm(unit="seq", desc="predicting")
    done = 0
    for k, chunk in enumerate(chunked(read_inputs(args.input), args.chunk_records)):
        done += len(chunk)
        bar.update(len(chunk))
        if store.done(k):
            continue  # finished by an earlier run
        if predictor is None:
            predictor = load_predictor(args.model, args.base_model, args.dtype)
            max_length = args.max_length or predictor.spec.model_max_length or DEFAULT_MAX_LENGTH
            thresholds = [args.threshold] * len(predictor.spec.label_names) if args.threshold is not None else predictor.spec.thresholds
        logits = predictor.logits([r.sequence for r in chunk], max_length, args.batch_size, args.rc_tta)
        predicted = output_columns(predictor.spec, logits, thresholds)
        carried = {name: np.array([r.carried[name] for r in chunk]) for name in chunk[0].carried}
        if clash := sorted(set(carried) & set(predicted)):
            raise GenomeFormatError(f"{args.input}:1: input columns {clash} clash with output columns; rename them")
        store.save(k, {**carried, **predicted})
    bar.close()
    if done == 0:
        raise GenomeFormatError(f"{args.input}: no records")
    store.finish(lambda columns: write_table(args.output, columns))
    print(f"wrote {args.output}: {done:,} predictions", file=sys.stderr)
    return 0


if __name__ == "__main__":
    run(main)
