"""In-silico saturation mutagenesis: every position x every other base of each input sequence.

    python mutagenesis.py --input seqs.fa --output_dir ism/ [--model FINE_TUNED_DIR --target_class 1]

Input: FASTA / FASTA.gz / bgzip (named by the header) or a CSV with a `sequence` column (named by
`id` or `name`, else the row number). A classifier checkpoint gives the delta logit of
--target_class (alt minus ref, whole sequence); an MLM checkpoint gives pll_ratio with the whole
sequence as the window and --flank_bp 0 by default (variant_effects.py, "Saturation mutagenesis").
Per sequence, OUTPUT_DIR/NAME.csv holds one row per position (position 1-based, ref base, then A,
C, G, T; 0 at the reference base) and OUTPUT_DIR/NAME.png the heatmap. Existing files are never replaced without --overwrite.
"""

import os
import re
import sys
from dataclasses import dataclass, field

import numpy as np
from transformers import HfArgumentParser

from dnabert2.chunked_output import write_table
from dnabert2.cli import REPO_ROOT, run
from dnabert2.dna_tokenizer import BASES
from dnabert2.genome_io import GenomeFormatError, read_records
from dnabert2.variant_effects import (
    DEFAULT_BATCH_SIZE, DEFAULT_MUTAGENESIS_FLANK_BP, MUTAGENESIS_MODES, load_scoring_model, model_kind, plot_mutagenesis,
    saturation_mutagenesis,
)


@dataclass
class MutagenesisArgs:
    input: str = field(metadata={"help": "FASTA (plain/gzip/bgzip) or CSV with a 'sequence' column"})
    output_dir: str = field(metadata={"help": "one NAME.csv and NAME.png per sequence"})
    model: str = field(default=REPO_ROOT, metadata={"help": "fine-tuned classifier or MLM checkpoint"})
    mode: str = field(default="", metadata={"help": f"one of {MUTAGENESIS_MODES}; default: classifier if the model is one"})
    target_class: int = field(default=1, metadata={"help": "class whose logit is scored (classifier mode)"})
    flank_bp: int = field(default=DEFAULT_MUTAGENESIS_FLANK_BP, metadata={
        "help": "pll_ratio mode: scored tokens reach this many bp past the base (0: only the tokens on it; "
                "score_variants.py uses 32, about 13x the work here)"})
    batch_size: int = DEFAULT_BATCH_SIZE
    dtype: str = "float32"
    overwrite: bool = False


def safe_name(name: str) -> str:
    """A file name from a record name: the first word, with anything but letters, digits, . _ - replaced."""
    word = (name.split() or ["sequence"])[0]
    return re.sub(r"[^A-Za-z0-9._-]", "_", word)[:100]


def main(argv=None) -> int:
    (args,) = HfArgumentParser(MutagenesisArgs).parse_args_into_dataclasses(args=argv)
    records = list(read_records(args.input))
    if not records:
        raise GenomeFormatError(f"{args.input}: no sequences")
    names = [safe_name(n) for n, _ in records]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise GenomeFormatError(f"{args.input}: sequence names {duplicates} repeat; output files would collide")
    os.makedirs(args.output_dir, exist_ok=True)
    targets = [os.path.join(args.output_dir, f"{n}.{ext}") for n in names for ext in ("csv", "png")]
    existing = [t for t in targets if os.path.exists(t)]
    if existing and not args.overwrite:
        raise FileExistsError(f"{existing[0]} exists ({len(existing)} output file(s) in all); pass --overwrite to replace")
    model, tokenizer = load_scoring_model(args.model, args.dtype)
    mode = args.mode or ("classifier" if model_kind(model) == "classifier" else "pll_ratio")
    label = f"delta logit, class {args.target_class} (alt - ref)" if mode == "classifier" else "pll_ratio (alt - ref)"
    from tqdm.auto import tqdm

    for name, (record, seq) in tqdm(list(zip(names, records)), desc="mutagenesis", unit="sequence", file=sys.stderr):
        matrix = saturation_mutagenesis(model, tokenizer, seq, mode=mode, target_class=args.target_class,
                                        flank_bp=args.flank_bp, batch_size=args.batch_size)
        columns = {"position": np.arange(1, len(seq) + 1), "ref": np.array(list(seq.upper()))}
        columns.update({base: matrix[:, j] for j, base in enumerate(BASES)})
        write_table(os.path.join(args.output_dir, f"{name}.csv"), columns)
        plot_mutagenesis(matrix, seq, os.path.join(args.output_dir, f"{name}.png"), title=f"{record} ({len(seq)} bp)", label=label)
    print(f"wrote {len(records)} sequence(s) to {args.output_dir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    run(main)
