"""Held-out MLM accuracy of a checkpoint next to two trivial baselines, on the same masked positions.

    python bench/mlm_baselines.py --model . --train_files GENOMES... [--eval_fraction 0.02 --max_bp 1000]

The evaluation set is pretrain.py's: the held-out tail of every record, tiled into max_bp windows,
masked once with the given seed. Baselines, with counts taken from the training regions:
  unigram: always predict the most frequent training token;
  bigram:  predict the most frequent token that follows the (unmasked) previous token.
"""

import argparse
from collections import Counter, defaultdict

import torch

from dnabert2.dna_tokenizer import load_tokenizer
from dnabert2.modeling_bert import BertForMaskedLM
from dnabert2.pretraining_data import GenomeCropStream, MLMCollator, heldout_examples, scan_records


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=".")
    p.add_argument("--train_files", nargs="+", required=True)
    p.add_argument("--eval_fraction", type=float, default=0.02)
    p.add_argument("--min_bp", type=int, default=200)
    p.add_argument("--max_bp", type=int, default=1000)
    p.add_argument("--max_eval_examples", type=int, default=256)
    p.add_argument("--seed", type=int, default=42)
    args = p.parse_args()

    tokenizer = load_tokenizer(args.model)
    spans = scan_records(args.train_files, args.eval_fraction, args.min_bp)
    examples = heldout_examples(spans, tokenizer, args.max_bp, args.max_eval_examples, args.seed)

    unigram, bigram = Counter(), defaultdict(Counter)
    stream = GenomeCropStream(spans, tokenizer, args.min_bp, args.max_bp, rc_prob=0.5, seed=args.seed)
    for example in stream.passes(1):
        ids = torch.where(example["labels"] == -100, example["input_ids"], example["labels"]).tolist()[1:-1]
        unigram.update(ids)
        for prev, cur in zip(ids, ids[1:]):
            bigram[prev][cur] += 1
    top = unigram.most_common(1)[0][0]
    follow = {prev: c.most_common(1)[0][0] for prev, c in bigram.items()}

    model = BertForMaskedLM.from_pretrained(args.model).eval()
    batch = MLMCollator(tokenizer)(examples)
    with torch.no_grad():
        logits = model(**batch).logits  # (masked positions, vocab)
    labels = batch["labels"]
    masked = labels != -100
    original = torch.where(masked, labels, batch["input_ids"])
    previous = torch.nn.functional.pad(original, (1, 0))[:, :-1][masked]
    targets = labels[masked]
    scores = {
        "model": (logits.argmax(-1) == targets).float().mean().item(),
        "unigram (most frequent token)": (targets == top).float().mean().item(),
        "bigram (most frequent after previous token)": sum(
            follow.get(prev, top) == t for prev, t in zip(previous.tolist(), targets.tolist())
        ) / len(targets),
    }
    print(f"held-out masked positions: {len(targets):,} in {len(examples)} windows")
    print("| predictor | MLM accuracy |\n|---|---:|")
    for name, value in scores.items():
        print(f"| {name} | {value:.4f} |")


if __name__ == "__main__":
    main()
