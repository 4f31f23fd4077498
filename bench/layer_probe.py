"""Which hidden layer embeds best: a linear probe per layer on frozen, mean-pooled embeddings.

    python bench/layer_probe.py --task_dir GUE_ROOT/prom/prom_300_tata --max_train 3000

For every hidden state of the model (0 = the embedding layer's output, 1..N = encoder layers) and
for the mean of all encoder layers ("1:"), the train and test sequences are embedded with
`embed(pooling="mean", layer=...)` (no fine-tuning), the features standardised, and sklearn's
LogisticRegression (max_iter 2000, C 1.0) fitted on a fixed random subset of the train split (seed 0);
the table gives test MCC on the full test split. One forward pass per layer choice.
"""

import argparse
import os
import random
import sys
import time

from bench_paths import ROOT  # bench/bench_paths.py


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task_dir", required=True, help="a GUE task folder with train.csv and test.csv")
    p.add_argument("--model", default=str(ROOT))
    p.add_argument("--max_train", type=int, default=3000)
    p.add_argument("--batch_size", type=int, default=64)
    args = p.parse_args(argv)

    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import matthews_corrcoef
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from dnabert2.dna_tokenizer import load_tokenizer
    from dnabert2.gue import read_split
    from dnabert2.modeling_bert import BertModel

    train = read_split(os.path.join(args.task_dir, "train.csv"))
    test = read_split(os.path.join(args.task_dir, "test.csv"))
    keep = sorted(random.Random(0).sample(range(len(train.labels)), min(args.max_train, len(train.labels))))
    train_seqs = [train.sequences[0][i] for i in keep]
    train_labels = np.array([train.labels[i] for i in keep])
    model = BertModel.from_pretrained(args.model, add_pooling_layer=False).eval()
    tokenizer = load_tokenizer(args.model)
    layers = [str(k) for k in range(model.config.num_hidden_layers + 1)] + ["1:"]
    print(f"{args.task_dir}: {len(train_seqs)} train, {len(test.labels)} test sequences; model {args.model}", file=sys.stderr)
    print("| layer | test MCC | train accuracy |\n|---|---:|---:|")
    for layer in layers:
        start = time.time()
        x_train = model.embed(tokenizer, train_seqs, layer=layer, batch_size=args.batch_size)
        x_test = model.embed(tokenizer, test.sequences[0], layer=layer, batch_size=args.batch_size)
        probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=1.0))
        probe.fit(x_train, train_labels)
        mcc = matthews_corrcoef(test.labels, probe.predict(x_test))
        name = {"0": "0 (embeddings)", "1:": "mean of 1..N"}.get(layer, layer)
        print(f"| {name} | {mcc:.3f} | {probe.score(x_train, train_labels):.3f} |", flush=True)
        print(f"layer {layer}: {time.time() - start:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
