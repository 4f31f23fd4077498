"""Held-out MLM accuracy of checkpoints next to two trivial baselines, on the same masked positions,
overall and per genome file (species), and optionally on the sequences of GUE CSVs.

    python bench/mlm_baselines.py --models shipped=. --train_files GENOMES... [--eval_csvs GUE/mouse/0/test.csv ...]

The evaluation set is pretrain.py's: the held-out tail of every record, tiled into max_bp windows,
masked once with the given seed (per file here, so each file's windows are its own). A CSV's
`sequence` column is masked the same way (at most --max_eval_examples rows, evenly spread).
Baselines, with counts taken from the training regions of all files:
  unigram: always predict the most frequent training token;
  bigram:  predict the most frequent token that follows the (unmasked) previous token.
"""

import csv
import os
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import torch
from transformers import HfArgumentParser

from dnabert2.dna_tokenizer import load_tokenizer
from dnabert2.modeling_bert import IGNORE_INDEX, BertForMaskedLM
from dnabert2.pretraining_data import GenomeCropStream, MLMCollator, MLMMasker, heldout_examples, scan_records


@dataclass
class Args:
    train_files: list[str] = field(metadata={"help": "the pretraining genomes (held-out tails are scored)"})
    models: list[str] = field(default_factory=lambda: ["shipped=."], metadata={"help": "NAME=FOLDER"})
    eval_csvs: list[str] = field(default_factory=list, metadata={"help": "CSVs with a sequence column (e.g. GUE test)"})
    eval_fraction: float = 0.02
    min_bp: int = 200
    max_bp: int = 1000
    max_eval_examples: int = 256
    seed: int = 42


def csv_examples(path: str, tokenizer, max_examples: int, seed: int) -> list[dict]:
    with open(path, newline="") as f:
        sequences = [row["sequence"] for row in csv.DictReader(f)]
    if len(sequences) > max_examples:
        step = len(sequences) / max_examples
        sequences = [sequences[int(i * step)] for i in range(max_examples)]
    generator = torch.Generator().manual_seed(seed)
    masker = MLMMasker(tokenizer)
    examples = []
    for ids in tokenizer(sequences, add_special_tokens=True)["input_ids"]:
        input_ids, labels = masker(torch.tensor(ids), generator)
        examples.append({"input_ids": input_ids.tolist(), "labels": labels.tolist()})
    return examples


def scores(models: dict, examples: list[dict], tokenizer, top: int, follow: dict) -> dict[str, float]:
    batch = MLMCollator(tokenizer)(examples)
    labels = batch["labels"]
    masked = labels != IGNORE_INDEX
    original = torch.where(masked, labels, batch["input_ids"])
    previous = torch.nn.functional.pad(original, (1, 0))[:, :-1][masked]
    targets = labels[masked]
    out = {"masked positions": float(len(targets))}
    for name, model in models.items():
        with torch.no_grad():
            logits = model(**batch).logits  # (masked positions, vocab)
        out[name] = (logits.argmax(-1) == targets).float().mean().item()
    out["unigram"] = (targets == top).float().mean().item()
    out["bigram"] = sum(follow.get(p, top) == t for p, t in zip(previous.tolist(), targets.tolist())) / len(targets)
    return out


def main(argv: list[str] | None = None) -> int:
    (args,) = HfArgumentParser(Args).parse_args_into_dataclasses(args=argv)
    folders = dict(spec.partition("=")[::2] for spec in args.models)
    tokenizer = load_tokenizer(next(iter(folders.values())))
    spans = scan_records(args.train_files, args.eval_fraction, args.min_bp)

    unigram, bigram = Counter(), defaultdict(Counter)
    stream = GenomeCropStream(spans, tokenizer, args.min_bp, args.max_bp, rc_prob=0.5, seed=args.seed)
    for example in stream.passes(1):
        ids = torch.where(example["labels"] == IGNORE_INDEX, example["input_ids"], example["labels"]).tolist()[1:-1]
        unigram.update(ids)
        for prev, cur in zip(ids, ids[1:]):
            bigram[prev][cur] += 1
    top = unigram.most_common(1)[0][0]
    follow = {prev: c.most_common(1)[0][0] for prev, c in bigram.items()}

    models = {name: BertForMaskedLM.from_pretrained(folder).eval() for name, folder in folders.items()}
    sets = {"all files": heldout_examples(spans, tokenizer, args.max_bp, args.max_eval_examples, args.seed)}
    for path in args.train_files:
        own = [s for s in spans if s.path == path]
        sets[os.path.basename(path)] = heldout_examples(own, tokenizer, args.max_bp, args.max_eval_examples, args.seed)
    for path in args.eval_csvs:
        sets[path] = csv_examples(path, tokenizer, args.max_eval_examples, args.seed)
    columns = list(models) + ["unigram", "bigram"]
    print("| held-out set | masked positions | " + " | ".join(columns) + " |")
    print("|---|---:|" + "---:|" * len(columns))
    for name, examples in sets.items():
        row = scores(models, examples, tokenizer, top, follow)
        print(f"| {name} | {int(row['masked positions']):,} | " + " | ".join(f"{row[c]:.4f}" for c in columns) + " |",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
