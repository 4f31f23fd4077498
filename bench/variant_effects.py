"""Measurements of variant_effects (numbers in BENCHMARKS.md, "Variant effects").

    python bench/variant_effects.py auroc --genomes GENOMES/*.fa.gz GENOMES/*.bgz
    python bench/variant_effects.py tata --models NAME=FINE_TUNED_DIR ... --test_csv GUE/prom/prom_300_tata/test.csv
    python bench/variant_effects.py tata_table PER_SEQUENCE.csv ...
    python bench/variant_effects.py speed --threads 2
    python bench/variant_effects.py ism --threads 2 --flanks 0 8 32 --count_flanks 0 8 16 32

auroc: positions drawn at random from the held-out tail of every record (its last --eval_fraction, as
  pretrain.py holds out; the window lies inside the tail where the tail is long enough). "ref" is the
  real base, "alt" a random other base. AUROC = P(pll_ratio < 0) + P(pll_ratio = 0) / 2, the
  probability that the score ranks the real base above the substitute (the AUROC of the pairwise
  decision "which of the two sequences is real"), for the given checkpoint and for a randomly
  initialised model of the same config. 95% interval: bootstrap over positions.
tata: saturation mutagenesis (classifier, delta logit of class 1) of every test positive that
  contains a TATA box (TATA[AT]A[AT]), for each fine-tuned model; per position the mean |delta
  logit| over its 3 substitutions; per model the mean effect inside the motif vs outside it, their
  ratio, and in how many sequences inside > outside. tata_table: the same table from the
  --per_sequence files of runs (several models, or runs stopped early), over the sequences all finished.
speed: variants per second of score_windows (default scores) on SNVs of the bundled mitochondrion.
ism: zero-shot (pll_ratio) saturation mutagenesis of one 300 bp stretch of the bundled mitochondrion,
  per flank_bp: "before" (masked copies deduplicated per (sequence, token), the algorithm up to
  commit ff6347a, kept below as `masked_token_logprobs_before`) and "after" (variant_effects:
  deduplicated per masked input) in the same process, CPU and wall seconds, forward rows, and the
  largest difference between the two matrices.
"""

import argparse
import re
import sys
import time

import numpy as np
import torch

from dnabert2 import variant_effects
from dnabert2.configuration_bert import PRESETS, BertConfig
from dnabert2.dna_tokenizer import BASES, load_tokenizer
from dnabert2.modeling_bert import IGNORE_INDEX, BertForMaskedLM
from dnabert2.pretraining_data import scan_records
from dnabert2.variant_effects import (
    ReferenceGenome, Variant, VariantWindow, load_scoring_model, plot_mutagenesis, saturation_mutagenesis, score_windows,
)

TATA = re.compile(r"TATA[AT]A[AT]")


def auroc(args) -> None:
    rng = np.random.default_rng(args.seed)
    windows, names = [], []
    for span in scan_records(args.genomes, args.eval_fraction, 200):
        genome = ReferenceGenome(span.path, args.cache_dir)
        chrom = span.name.split()[0]
        tail = span.length - span.train_end
        half = args.window_bp // 2
        lo, hi = (span.train_end + half, span.length - half) if tail > args.window_bp else (span.train_end, span.length)
        picked = 0
        for pos0 in rng.permutation(np.arange(lo, hi)):
            ref = genome.fetch(chrom, int(pos0), int(pos0) + 1)
            if ref not in BASES:
                continue
            alt = rng.choice([b for b in BASES if b != ref])
            windows.append(genome.window(Variant(chrom, int(pos0) + 1, ref, str(alt)), args.window_bp))
            names.append(chrom)
            picked += 1
            if picked == args.per_record:
                break
    tokenizer = load_tokenizer(args.model)
    trained, _ = load_scoring_model(args.model)
    torch.manual_seed(args.seed)
    random_model = BertForMaskedLM(BertConfig.from_pretrained(args.model)).eval()
    print(f"{len(windows)} positions from {len(set(names))} records; window {args.window_bp} bp, flank {args.flank_bp} bp")
    print("| model | positions | AUROC (real base preferred) | 95% bootstrap | mean pll_ratio | mean tokens scored (ref) |")
    print("|---|---:|---:|---|---:|---:|")
    for label, model in (("bundled checkpoint", trained), ("random init, same config", random_model)):
        start = time.process_time()
        out = score_windows(model, tokenizer, windows, scores=["pll_ratio"], flank_bp=args.flank_bp)
        x = out["pll_ratio"]
        wins = (x < 0) + 0.5 * (x == 0)
        boot = [rng.choice(wins, len(wins)).mean() for _ in range(2000)]
        print(f"| {label} | {len(x)} | {wins.mean():.3f} | {np.percentile(boot, 2.5):.3f}-{np.percentile(boot, 97.5):.3f} | "
              f"{x.mean():.3f} | {out['pll_tokens_ref'].mean():.1f} |", flush=True)
        print(f"  ({time.process_time() - start:.0f} s CPU)", file=sys.stderr)
        per = {n: wins[[i for i, m in enumerate(names) if m == n]].mean() for n in dict.fromkeys(names)}
        print("  per record: " + ", ".join(f"{n} {v:.2f}" for n, v in per.items()), file=sys.stderr)


def tata(args) -> None:
    import csv
    import json
    import os

    with open(args.test_csv, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["label"] == "1" and TATA.search(r["sequence"].upper())]
    with open(args.test_csv, newline="") as f:
        positives = sum(r["label"] == "1" for r in csv.DictReader(f))
    print(f"{len(rows)} of {positives} test positives hold a TATA[AT]A[AT] match", end="")
    if args.max_sequences:
        rows = rows[: args.max_sequences]
        print(f"; the first {len(rows)} in file order are mutagenized", end="")
    print("; 3 substitutions per position each")
    torch.set_num_threads(args.threads)
    print("| model | dev MCC | sequences | mean effect inside the motif | mean effect outside | ratio | "
          "median per-sequence ratio | sequences with inside > outside | CPU s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for spec in args.models:
        name, _, folder = spec.partition("=")
        if not folder:
            raise SystemExit(f"--models {spec!r}: expected NAME=FOLDER")
        model, tokenizer = load_scoring_model(folder)
        inside_all, outside_all = [], []
        start = time.process_time()
        for k, row in enumerate(rows):
            seq = row["sequence"].upper()
            matrix = saturation_mutagenesis(model, tokenizer, seq, mode="classifier", target_class=1)
            effect = np.nanmean(np.abs(matrix), axis=1) * 4 / 3  # mean over the 3 substitutions (ref cell is 0)
            motif = np.zeros(len(seq), dtype=bool)
            for m in TATA.finditer(seq):
                motif[m.start() : m.end()] = True
            inside_all.append(effect[motif].mean())
            outside_all.append(effect[~motif].mean())
            if args.per_sequence:
                with open(args.per_sequence, "a") as f:  # one line per finished sequence: a stopped run keeps them
                    f.write(f"{name},{k + 1},{inside_all[-1]:.6f},{outside_all[-1]:.6f}\n")
            if (k + 1) % 10 == 0:
                print(f"  {name}: {k + 1} sequences, {time.process_time() - start:.0f} s CPU", file=sys.stderr, flush=True)
            if k == 0 and args.figure and spec == args.models[0]:
                first = TATA.search(seq)
                plot_mutagenesis(matrix, seq, args.figure, label="delta logit, promoter class (alt - ref)",
                                 title=f"prom_300_tata test positive #1 ({name}): TATA box {first.group()} at {first.start() + 1}-{first.end()}")
        inside, outside = np.array(inside_all), np.array(outside_all)  # (sequences,) each
        ratios = inside / outside
        state = os.path.join(folder, "trainer_state.json")  # a Trainer checkpoint folder: its dev evaluations
        evals = [e for e in json.load(open(state))["log_history"] if "eval_matthews_correlation" in e] if os.path.isfile(state) else []
        mcc = evals[-1]["eval_matthews_correlation"] if evals else float("nan")
        print(f"| {name} | {mcc:.3f} | {len(rows)} | {inside.mean():.4f} | {outside.mean():.4f} | {inside.mean() / outside.mean():.2f} | "
              f"{np.median(ratios):.2f} | {int((ratios > 1).sum())} / {len(rows)} | {time.process_time() - start:.0f} |", flush=True)


def tata_table(args) -> None:
    """The tata table from --per_sequence files, over the sequences every model finished (file order)."""
    import csv

    effects: dict[str, dict[int, tuple[float, float]]] = {}
    for path in args.files:
        with open(path, newline="") as f:
            for name, k, inside, outside in csv.reader(f):
                effects.setdefault(name, {})[int(k)] = (float(inside), float(outside))
    common = sorted(set.intersection(*(set(v) for v in effects.values())))
    print(f"sequences finished by every model: {len(common)} (test positives with a motif, numbers {common[0]}-{common[-1]} in file order)")
    print("| model | sequences | mean effect inside the motif | mean effect outside | ratio | median per-sequence ratio | sequences with inside > outside |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, per in effects.items():
        inside, outside = (np.array([per[k][j] for k in common]) for j in (0, 1))  # (sequences,) each
        ratios = inside / outside
        print(f"| {name} | {len(common)} | {inside.mean():.4f} | {outside.mean():.4f} | {inside.mean() / outside.mean():.2f} | "
              f"{np.median(ratios):.2f} | {int((ratios > 1).sum())} / {len(common)} |")


def speed(args) -> None:
    torch.set_num_threads(args.threads)
    genome = ReferenceGenome(args.fasta, args.cache_dir)
    chrom = next(iter(genome.lengths))
    rng = np.random.default_rng(0)
    tokenizer = load_tokenizer(args.model)
    print(f"| model | dtype | scores | variants | wall s | CPU s | variants/s (wall) |")
    print("|---|---|---|---:|---:|---:|---:|")
    for name in args.models:
        for dtype in ("float32", "bfloat16"):
            if name == "bundled":
                model, _ = load_scoring_model(args.model, dtype)
            else:
                torch.manual_seed(0)
                config = BertConfig.from_pretrained(args.model, **PRESETS[name])
                model = BertForMaskedLM(config).to(getattr(torch, dtype)).eval()
            n = args.variants if name == "bundled" else args.variants_large
            positions = rng.integers(args.window_bp, genome.lengths[chrom] - args.window_bp, n)
            windows = []
            for p in positions:
                ref = genome.fetch(chrom, int(p), int(p) + 1)
                windows.append(genome.window(Variant(chrom, int(p) + 1, ref, "A" if ref != "A" else "G"), args.window_bp))
            w = windows[0]
            score_windows(model, tokenizer, [VariantWindow(w.ref_seq[w.start - 32 : w.start + 32], w.alt_seq[w.start - 32 : w.start + 32], 32, 1, 1)])  # warm-up, 64 bp
            t, c = time.time(), time.process_time()
            score_windows(model, tokenizer, windows)
            wall, cpu = time.time() - t, time.process_time() - c
            print(f"| {name} | {dtype} | pll_ratio + embedding | {n} | {wall:.1f} | {cpu:.1f} | {n / wall:.2f} |", flush=True)
    model, _ = load_scoring_model(args.model)
    seq = genome.fetch(chrom, 3000, 3300)
    t, c = time.time(), time.process_time()
    saturation_mutagenesis(model, tokenizer, seq, mode="pll_ratio")
    print(f"mutagenesis pll_ratio, 300 bp (900 variants), bundled fp32: {time.time() - t:.1f} s wall, {time.process_time() - c:.1f} s CPU")
    if args.classifier:
        model, _ = load_scoring_model(args.classifier)
        t, c = time.time(), time.process_time()
        saturation_mutagenesis(model, tokenizer, seq, mode="classifier")
        print(f"mutagenesis classifier, 300 bp (900 variants), fp32: {time.time() - t:.1f} s wall, {time.process_time() - c:.1f} s CPU")


def masked_token_logprobs_before(model, tokenizer, requests, batch_size: int = 64) -> np.ndarray:
    """The implementation before the masked-input deduplication (verbatim up to names): identical
    (sequence, token index) requests computed once, so every alt sequence's masked copies are
    separate forward passes even where the masked input equals the ref's."""
    seq_index: dict[tuple[int, ...], int] = {}
    row_index: dict[tuple[int, int], int] = {}
    keys = []
    for ids, i in requests:
        k = seq_index.setdefault(tuple(ids), len(seq_index))
        keys.append(row_index.setdefault((k, int(i)), len(row_index)))
    values = np.empty(len(row_index), dtype=np.float64)
    if not row_index:
        return values
    seqs = list(seq_index)
    width = max(len(s) for s in seqs) + 2
    table = torch.full((len(seqs), width), tokenizer.pad_token_id, dtype=torch.long)  # (sequences, W)
    for k, tokens in enumerate(seqs):
        table[k, : len(tokens) + 2] = torch.tensor([tokenizer.cls_token_id, *tokens, tokenizer.sep_token_id])
    lengths = torch.tensor([len(s) + 2 for s in seqs])  # (sequences,)
    rows = torch.tensor(list(row_index), dtype=torch.long)  # (rows, 2): sequence, token index
    order = torch.argsort(lengths[rows[:, 0]], stable=True)
    for b in range(0, len(order), batch_size):
        batch = order[b : b + batch_size]  # (batch,)
        seq, pos = rows[batch, 0], rows[batch, 1] + 1
        length = int(lengths[seq].max())
        ids = table[seq, :length].clone()  # (batch, L)
        mask = (torch.arange(length)[None, :] < lengths[seq][:, None]).long()  # (batch, L)
        arange = torch.arange(len(batch))
        targets = ids[arange, pos].clone()  # (batch,)
        labels = torch.full_like(ids, IGNORE_INDEX)  # (batch, L)
        labels[arange, pos] = targets
        ids[arange, pos] = tokenizer.mask_token_id
        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=mask, labels=labels).logits
        logp = torch.log_softmax(logits.float(), dim=-1)  # (batch, vocab)
        values[batch.numpy()] = logp.gather(1, targets[:, None]).squeeze(1).double().numpy()
    return values[np.asarray(keys, dtype=np.int64)]


def ism(args) -> None:
    torch.set_num_threads(args.threads)
    genome = ReferenceGenome(args.fasta, args.cache_dir)
    chrom = next(iter(genome.lengths))
    seq = genome.fetch(chrom, args.start, args.start + args.length)
    tokenizer = load_tokenizer(args.model)
    models = {dtype: load_scoring_model(args.model, dtype)[0] for dtype in args.dtypes}
    rows_seen = [0]
    for model in models.values():
        model.register_forward_pre_hook(lambda module, inputs, kwargs: rows_seen.__setitem__(0, rows_seen[0] + len(kwargs["input_ids"])),
                                        with_kwargs=True)
    after = variant_effects.masked_token_logprobs
    print(f"{chrom}:{args.start + 1}-{args.start + args.length} ({args.length} bp, {3 * args.length} variants), "
          f"{args.threads} threads, bundled MLM")
    print("\nForward rows (masked copies run through the model), counted without running it:\n")
    print("| flank_bp | masked-token terms | before: distinct (sequence, token) | after: distinct masked inputs | ratio |")
    print("|---:|---:|---:|---:|---:|")
    for flank in args.count_flanks:
        requests = []

        def record(model, tokenizer, batch, batch_size=64):
            requests.extend(batch)
            return np.zeros(len(batch))

        variant_effects.masked_token_logprobs = record
        try:
            saturation_mutagenesis(models[args.dtypes[0]], tokenizer, seq, mode="pll_ratio", flank_bp=flank)
        finally:
            variant_effects.masked_token_logprobs = after
        before_rows = len({(tuple(ids), int(i)) for ids, i in requests})
        after_rows = len({(*ids[:i], tokenizer.mask_token_id, *ids[i + 1 :]) for ids, i in requests})
        print(f"| {flank} | {len(requests):,} | {before_rows:,} | {after_rows:,} | {before_rows / after_rows:.2f} |", flush=True)
    print("\nTimed in this process:\n")
    print("| flank_bp | implementation | dtype | forward rows | CPU s | wall s | CPU speed-up | max abs diff vs before (fp32) |")
    print("|---:|---|---|---:|---:|---:|---:|---:|")
    for flank in args.flanks:
        results = {}
        for label, function, dtype in [("before", masked_token_logprobs_before, "float32")] + [("after", after, d) for d in args.dtypes]:
            variant_effects.masked_token_logprobs = function
            rows_seen[0] = 0
            try:
                t, c = time.time(), time.process_time()
                matrix = saturation_mutagenesis(models[dtype], tokenizer, seq, mode="pll_ratio", flank_bp=flank)
                wall, cpu = time.time() - t, time.process_time() - c
            finally:
                variant_effects.masked_token_logprobs = after
            results[label, dtype] = cpu
            diff = np.nanmax(np.abs(matrix - results.setdefault("matrix", matrix)))
            speedup = results["before", "float32"] / cpu
            print(f"| {flank} | {label} | {dtype} | {rows_seen[0]:,} | {cpu:.1f} | {wall:.1f} | {speedup:.1f}x | {diff:.1e} |", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    a = sub.add_parser("auroc")
    a.add_argument("--genomes", nargs="+", required=True)
    a.add_argument("--model", default=".")
    a.add_argument("--eval_fraction", type=float, default=0.02)
    a.add_argument("--per_record", type=int, default=50)
    a.add_argument("--window_bp", type=int, default=256)
    a.add_argument("--flank_bp", type=int, default=32)
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--cache_dir", default=None)
    t = sub.add_parser("tata")
    t.add_argument("--models", nargs="+", required=True, help="NAME=FOLDER of fine-tuned classifiers (the figure: the first)")
    t.add_argument("--test_csv", required=True)
    t.add_argument("--max_sequences", type=int, default=0, help="0: every motif-bearing test positive")
    t.add_argument("--figure", default="")
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("--per_sequence", default="", help="append NAME,number,inside,outside per finished sequence to this CSV")
    tt = sub.add_parser("tata_table")
    tt.add_argument("files", nargs="+", help="--per_sequence files of tata runs")
    s = sub.add_parser("speed")
    s.add_argument("--model", default=".")
    s.add_argument("--fasta", default="data/genomes/human_mito.fa.gz")
    s.add_argument("--models", nargs="+", default=["bundled", "dnabert2-117m"])
    s.add_argument("--threads", type=int, default=2)
    s.add_argument("--variants", type=int, default=32)
    s.add_argument("--variants_large", type=int, default=4)
    s.add_argument("--window_bp", type=int, default=1024)
    s.add_argument("--classifier", default="")
    s.add_argument("--cache_dir", default=None)
    m = sub.add_parser("ism")
    m.add_argument("--model", default=".")
    m.add_argument("--fasta", default="data/genomes/human_mito.fa.gz")
    m.add_argument("--start", type=int, default=3000, help="0-based start of the stretch in the first record")
    m.add_argument("--length", type=int, default=300)
    m.add_argument("--flanks", type=int, nargs="*", default=[0, 8, 32], help="timed (before and after)")
    m.add_argument("--count_flanks", type=int, nargs="+", default=[0, 8, 16, 32], help="forward rows counted only")
    m.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"], choices=["float32", "bfloat16"])
    m.add_argument("--threads", type=int, default=2)
    m.add_argument("--cache_dir", default=None)
    args = p.parse_args()
    {"auroc": auroc, "tata": tata, "tata_table": tata_table, "speed": speed, "ism": ism}[args.command](args)


if __name__ == "__main__":
    main()
