"""Score variants (VCF or CSV/TSV) against a reference FASTA with a DNABERT-2 checkpoint.

    python score_variants.py --variants data/variants/human_mito_sample.vcf \
        --fasta data/genomes/human_mito.fa.gz --output scores.csv

Scores (definitions and why: variant_effects.py): pll_ratio with pll_tokens_ref, pll_tokens_alt
and pll_span_bp (MLM checkpoints), embedding_cosine and embedding_l2, and delta_logit_k /
delta_prob_k per class (fine-tuned classifiers). Output: the input columns plus the scores, as .csv,
.tsv or .parquet, written atomically; finished chunks are kept under OUTPUT.partial/ so an
interrupted run resumes. Bad input stops with an error naming the line; symbolic and breakend ALTs
are skipped and counted (and so are REF mismatches with --skip_ref_mismatch).
"""

import os
import sys
from collections import Counter
from dataclasses import asdict, dataclass, field

import numpy as np
from transformers import HfArgumentParser

from dnabert2.chunked_output import TABLE_SUFFIXES, ChunkStore, chunked, file_fingerprint, write_table
from dnabert2.cli import REPO_ROOT, run
from dnabert2.variant_effects import (
    ALL_SCORES, DEFAULT_BATCH_SIZE, DEFAULT_FLANK_BP, DEFAULT_WINDOW_BP, RefMismatchError, ReferenceGenome,
    VariantError, load_scoring_model, score_windows,
)
from dnabert2.variant_io import VariantInputError, read_variants


@dataclass
class ScoreArgs:
    variants: str = field(metadata={"help": "VCF (plain/gzip/bgzip) or CSV/TSV with chrom,pos,ref,alt"})
    fasta: str = field(metadata={"help": "reference FASTA (plain, gzip or bgzip)"})
    output: str = field(metadata={"help": f"result table, one of {TABLE_SUFFIXES}"})
    model: str = field(default=REPO_ROOT, metadata={"help": "checkpoint folder (MLM or sequence classifier)"})
    scores: str = field(default="", metadata={"help": f"comma-separated subset of {ALL_SCORES}; default: all the model has"})
    window_bp: int = field(default=DEFAULT_WINDOW_BP, metadata={"help": "window centred on the variant"})
    flank_bp: int = field(default=DEFAULT_FLANK_BP, metadata={"help": "pll_ratio scores tokens within this many bp"})
    layer: int = field(default=-1, metadata={"help": "hidden layer for the embedding scores (-1: last, 0: embeddings)"})
    rc_average: bool = field(default=False, metadata={"help": "embeddings averaged with the reverse complement"})
    batch_size: int = DEFAULT_BATCH_SIZE
    chunk_variants: int = field(default=256, metadata={"help": "variants per resumable chunk"})
    dtype: str = field(default="float32", metadata={"help": "float32 or bfloat16 (also on CPU)"})
    skip_ref_mismatch: bool = field(default=False, metadata={"help": "count and skip REF/FASTA disagreements"})
    overwrite: bool = field(default=False, metadata={"help": "replace an existing output file"})
    fasta_cache_dir: str = field(default="", metadata={"help": "where FASTA indexes / gunzipped copies go if needed"})


def _fingerprint(args: ScoreArgs) -> dict:
    options = {k: v for k, v in asdict(args).items() if k not in ("output", "batch_size", "overwrite", "fasta_cache_dir")}
    files = {"variants_file": file_fingerprint(args.variants), "fasta_file": file_fingerprint(args.fasta)}
    if os.path.exists(args.model):
        files["model_files"] = file_fingerprint(args.model)
    return {**options, **files}


def checked_windows(args: ScoreArgs, reference: ReferenceGenome, skipped: Counter):
    """(row, window) for every scorable variant; bad input raises VariantInputError naming the line."""
    for row in read_variants(args.variants, skipped):
        try:
            yield row, reference.window(row.variant, args.window_bp)
        except RefMismatchError as e:
            if not args.skip_ref_mismatch:
                raise VariantInputError(f"{args.variants}:{row.line}: {e} (pass --skip_ref_mismatch to skip such lines)") from None
            skipped["REF mismatch"] += 1
        except VariantError as e:
            raise VariantInputError(f"{args.variants}:{row.line}: {e}") from None


def main(argv=None) -> int:
    (args,) = HfArgumentParser(ScoreArgs).parse_args_into_dataclasses(args=argv)
    if not args.output.endswith(TABLE_SUFFIXES):
        raise VariantInputError(f"--output {args.output}: expected one of {TABLE_SUFFIXES}")
    if os.path.exists(args.output) and not args.overwrite:
        raise FileExistsError(f"{args.output} exists; pass --overwrite to replace it")
    for path in (args.variants, args.fasta):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path}: no such file")
    scores = [s for s in args.scores.split(",") if s] or None
    reference = ReferenceGenome(args.fasta, args.fasta_cache_dir or None)
    store = ChunkStore(args.output, _fingerprint(args))
    model = tokenizer = None
    skipped: Counter = Counter()
    done = 0
    from tqdm.auto import tqdm

    with tqdm(unit="variant", desc="scoring", file=sys.stderr) as bar:
        for k, chunk in enumerate(chunked(checked_windows(args, reference, skipped), args.chunk_variants)):
            done += len(chunk)
            bar.update(len(chunk))
            if store.done(k):
                continue  # finished by an earlier run
            if model is None:
                model, tokenizer = load_scoring_model(args.model, args.dtype)
            rows, windows = zip(*chunk)
            columns = {name: np.array([r.fields[name] for r in rows]) for name in rows[0].fields}
            columns.update(score_windows(model, tokenizer, windows, scores=scores, flank_bp=args.flank_bp,
                                         layer=args.layer, rc_average=args.rc_average, batch_size=args.batch_size))
            store.save(k, columns)
    for kind, count in sorted(skipped.items()):
        print(f"skipped {count:,} variant(s): {kind}", file=sys.stderr)
    if done == 0:
        raise VariantInputError(f"{args.variants}: no variant to score ({sum(skipped.values()):,} skipped)")
    store.finish(lambda columns: write_table(args.output, columns))
    print(f"wrote {args.output}: {done:,} variants scored, {sum(skipped.values()):,} skipped", file=sys.stderr)
    return 0


if __name__ == "__main__":
    run(main)
