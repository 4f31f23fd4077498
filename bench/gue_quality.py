"""GUE quality check: test MCC of the shipped checkpoint, the same architecture randomly
initialised, and a k-mer-count logistic regression, on real GUE tasks.

    python bench/gue_quality.py --gue_root GUE_ROOT --tasks tf/0 mouse/0 prom/prom_core_all \
        --max_train_samples 5000 --learning_rate 5e-4 --output_dir runs/gue_quality

Both networks get identical fine-tuning settings: finetune_gue.py's per-task presets (epochs,
max length, warmup) with the learning rate and training-set size given here (CPU-scaled), best
checkpoint by dev MCC, scored on the full test split. The baseline counts k-mers (k = 3..6) and
fits sklearn's LogisticRegression on the same training subset.
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def kmer_baseline(data_path: str, max_train: int) -> float:
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import matthews_corrcoef
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MaxAbsScaler

    from dnabert2.finetune_gue import subsample
    from dnabert2.gue import read_task

    splits = read_task(data_path)
    train = subsample(splits["train"], max_train) if 0 < max_train < len(splits["train"].labels) else splits["train"]
    model = make_pipeline(CountVectorizer(analyzer="char", ngram_range=(3, 6), lowercase=False), MaxAbsScaler(),
                          LogisticRegression(max_iter=2000, C=0.1))
    model.fit(train.sequences[0], train.labels)
    predictions = model.predict(splits["test"].sequences[0])
    return float(matthews_corrcoef(splits["test"].labels, predictions))


def random_init_folder(output_dir: str) -> str:
    import torch

    from dnabert2.configuration_bert import BertConfig
    from dnabert2.dna_tokenizer import load_tokenizer
    from dnabert2.modeling_bert import BertForMaskedLM
    from dnabert2.training_callbacks import save_tokenizer

    folder = os.path.join(output_dir, "random_init")
    torch.manual_seed(0)
    BertForMaskedLM(BertConfig.from_pretrained(str(ROOT))).save_pretrained(folder)
    save_tokenizer(load_tokenizer(str(ROOT)), folder)
    return folder


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gue_root", required=True)
    p.add_argument("--tasks", nargs="+", default=["tf/0", "mouse/0", "prom/prom_core_all", "prom/prom_300_tata"])
    p.add_argument("--max_train_samples", type=int, default=5000)
    p.add_argument("--learning_rate", default="5e-4")
    p.add_argument("--output_dir", default="runs/gue_quality")
    p.add_argument("--seed", default="42")
    args = p.parse_args()
    os.makedirs(args.output_dir, exist_ok=True)
    starts = {"shipped checkpoint": str(ROOT), "random init": random_init_folder(args.output_dir)}
    rows = []
    for task in args.tasks:
        row = {"task": task, "k-mer LR": kmer_baseline(os.path.join(args.gue_root, task), args.max_train_samples)}
        for name, model in starts.items():
            out = os.path.join(args.output_dir, name.replace(" ", "_"), task)
            cmd = [sys.executable, str(ROOT / "finetune_gue.py"), "--model_name_or_path", model, "--task", task,
                   "--gue_root", args.gue_root, "--output_dir", out, "--learning_rate", args.learning_rate,
                   "--max_train_samples", str(args.max_train_samples), "--seed", args.seed, "--disable_tqdm", "true",
                   "--save_total_limit", "1"]
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            with open(os.path.join(out, "test_results.json")) as f:
                row[name] = json.load(f)["test_matthews_correlation"]
        rows.append(row)
        print(json.dumps(row), flush=True)
    from dnabert2.gue import paper_score

    print(f"\ntest MCC x100 (train subset <= {args.max_train_samples}, lr {args.learning_rate}, seed {args.seed})\n")
    print("| task | shipped checkpoint | random init | k-mer LR | paper DNABERT-2-117M |\n|---|---:|---:|---:|---:|")
    for r in rows:
        paper = paper_score(r["task"])
        print(f"| {r['task']} | {100 * r['shipped checkpoint']:.1f} | {100 * r['random init']:.1f} | "
              f"{100 * r['k-mer LR']:.1f} | {'' if paper is None else f'{paper:.2f}'} |")
    print(f"| mean | {100 * np.mean([r['shipped checkpoint'] for r in rows]):.1f} | "
          f"{100 * np.mean([r['random init'] for r in rows]):.1f} | {100 * np.mean([r['k-mer LR'] for r in rows]):.1f} | |")


if __name__ == "__main__":
    main()
