"""CPU inference benchmark: tokens/s, peak RSS and roofline fraction per workload and backend.

    python bench/cpu_inference.py [--threads 2] [--repeats 5] [--gue-csv FILE] [--genome FILE] [--long-genome FILE]

Model: the dnabert2-117m preset with random weights (speed does not depend on the values).
Workloads (real sequences): (a) 32 x 500 bp GUE EMP sequences, (b) one 10 kbp genome slice,
(c) 8 genome slices of 100..2000 bp, (d) one 100 kbp genome slice.
Rows: `baseline` reproduces the original's CPU path (unpadded linear layers, but attention on
the padded batch with a materialised fp32 [B, H, L, L] ALiBi + mask bias shared by every layer);
then this repo's backends. Each (workload, row) runs in a fresh process so that peak RSS is its
own; tokens/s is the median of --repeats forward passes after one warm-up (workload (d): one
pass, no warm-up). The roofline is the
torch matmul rate on 2048^2 matrices measured in this run; FLOPs count the linear layers
(2 x weights per token) and attention (4 x L x hidden per token and layer) on real tokens only.
"""

import argparse
import csv
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORKLOADS = ("a", "b", "c", "d")
DESCRIPTIONS = {
    "a": "(a) 32 x 500 bp GUE EMP",
    "b": "(b) 1 x 10 kbp genome",
    "c": "(c) 8 x 100-2000 bp genome",
    "d": "(d) 1 x 100 kbp genome",
}
SHORT = {"float32": "fp32", "bfloat16": "bf16"}
ROWS = [("baseline", "float32"), ("sdpa", "float32"), ("sdpa", "bfloat16")]


def sequences(workload: str, args) -> list[str]:
    from dnabert2.genome_io import iter_records

    if workload == "a":
        with open(args.gue_csv, newline="") as f:
            return [row["sequence"] for row in csv.DictReader(f)][:32]
    source = args.long_genome if workload == "d" else args.genome
    genome = "".join(seq for _, seq in iter_records([source]))
    if workload == "b":
        return [genome[:10_000]]
    if workload == "d":
        if len(genome) < 100_000:
            raise ValueError(f"{source} holds {len(genome)} bp; workload (d) needs 100,000")
        return [genome[:100_000]]
    lengths = [100 + round(i * 1900 / 7) for i in range(8)]
    starts = [sum(lengths[:i]) for i in range(8)]
    return [genome[s : s + n] for s, n in zip(starts, lengths)]


def install_baseline():
    """Register the original's attention as backend 'baseline' (bench only)."""
    import torch

    from dnabert2 import bert_attention

    def baseline(qkv, packed, slopes, scale, dropout_p):
        bias = getattr(packed, "_baseline_bias", None)
        if bias is None:  # built once per forward, shared by every layer, fp32, [B, H, L, L]
            pos = torch.arange(packed.seqlen)
            alibi = -slopes[:, None, None] * (pos[None, :, None] - pos[None, None, :]).abs().float()
            pad = (1.0 - packed.attention_mask.float())[:, None, None, :] * -10000.0
            bias = packed._baseline_bias = alibi[None] + pad
        q, k, v = packed.pad(qkv).permute(2, 0, 3, 1, 4)
        scores = torch.matmul(q, k.transpose(-1, -2)) * scale + bias
        out = torch.matmul(torch.softmax(scores, dim=-1).to(v.dtype), v)
        return packed.unpad(out.transpose(1, 2)), None

    bert_attention._BACKENDS["baseline"] = baseline


def flops(lengths: list[int], config) -> float:
    h, i, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    linear = 2 * (3 * h * h + h * h + 2 * i * h + i * h) * layers  # per token
    return sum(n * linear + 4 * n * n * h * layers for n in lengths)


def matmul_peak(dtype_name: str, threads: int) -> float:
    import torch

    torch.set_num_threads(threads)
    dtype = getattr(torch, dtype_name)
    a, b = torch.randn(2048, 2048, dtype=dtype), torch.randn(2048, 2048, dtype=dtype)
    for _ in range(3):
        a @ b
    times = []
    for _ in range(10):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * 2048**3 / min(times)


def run_one(workload: str, backend: str, dtype_name: str, args) -> dict:
    """Runs in its own process: returns tokens, seconds per pass and peak RSS."""
    import torch

    from dnabert2.configuration_bert import PRESETS, BertConfig
    from dnabert2.dna_tokenizer import load_tokenizer
    from dnabert2.modeling_bert import BertModel

    torch.set_num_threads(args.threads)
    install_baseline()
    tokenizer = load_tokenizer(str(ROOT))
    seqs = sequences(workload, args)
    batch = tokenizer(seqs, padding=True, return_tensors="pt", verbose=False)
    config = BertConfig(**PRESETS["dnabert2-117m"])
    torch.manual_seed(0)
    model = BertModel(config, add_pooling_layer=False).to(getattr(torch, dtype_name)).eval()
    model.config._attn_implementation = backend  # after construction: "baseline" is not a transformers name
    times = []
    with torch.inference_mode():
        for _ in range(args.repeats + 1 if args.repeats > 1 else 1):
            start = time.perf_counter()
            model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
            times.append(time.perf_counter() - start)
    lengths = batch["attention_mask"].sum(1).tolist()
    return {
        "real_tokens": sum(lengths),
        "padded_tokens": batch["attention_mask"].numel(),
        "seconds": statistics.median(times[1:] or times),
        "flops": flops(lengths, config),
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
    }


def bf16_agreement(args) -> list[str]:
    """Cosine similarity of mean-pooled embeddings, bf16 vs fp32, on workloads (a) and (c)."""
    import torch

    from dnabert2.configuration_bert import PRESETS, BertConfig
    from dnabert2.dna_tokenizer import load_tokenizer
    from dnabert2.modeling_bert import BertModel

    torch.set_num_threads(args.threads)
    tokenizer = load_tokenizer(str(ROOT))
    seqs = sequences("a", args) + sequences("c", args)
    models = {"117m preset, random weights": lambda: BertModel(BertConfig(**PRESETS["dnabert2-117m"]), add_pooling_layer=False)}
    if (ROOT / "model.safetensors").exists():
        models["shipped checkpoint"] = lambda: BertModel.from_pretrained(str(ROOT), add_pooling_layer=False)
    lines = []
    for name, build in models.items():
        torch.manual_seed(0)
        model = build().eval()
        fp32 = torch.from_numpy(model.embed(tokenizer, seqs))
        bf16 = torch.from_numpy(model.to(torch.bfloat16).embed(tokenizer, seqs))
        cos = torch.nn.functional.cosine_similarity(fp32, bf16, dim=-1)
        lines.append(f"| {name} | {len(seqs)} | {cos.min():.5f} | {cos.mean():.5f} |")
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--gue-csv", default=str(ROOT / "bench" / "data" / "emp_h3_test_32.csv"))
    p.add_argument("--genome", default=str(ROOT / "data" / "genomes" / "phage_lambda.fa.gz"))
    p.add_argument("--long-genome", default=str(ROOT / "data" / "genomes" / "ecoli_k12_W3110_first100kbp.fa.gz"))
    p.add_argument("--workloads", default="abcd")
    p.add_argument("--rows", default=",".join(f"{b}:{d}" for b, d in ROWS), help="backend:dtype,...")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args()

    if args.worker:  # child process: one measurement
        workload, backend, dtype_name = args.worker.split(":")
        print(json.dumps(run_one(workload, backend, dtype_name, args)))
        return

    peaks = {d: matmul_peak(d, args.threads) for d in ("float32", "bfloat16")}
    print(f"matmul roofline ({args.threads} threads, 2048^2): fp32 {peaks['float32'] / 1e9:.0f} GFLOP/s, "
          f"bf16 {peaks['bfloat16'] / 1e9:.0f} GFLOP/s\n")
    print("| workload | backend | dtype | real / padded tokens | tokens/s | vs baseline | roofline fraction | peak RSS GB |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    rows = [tuple(r.split(":")) for r in args.rows.split(",")]
    for workload in args.workloads:
        baseline_rate = None
        for backend, dtype_name in rows:
            if workload == "d" and backend == "baseline":
                print(f"| {DESCRIPTIONS[workload]} | baseline | float32 | | skipped: its bias alone is "
                      f"{12 * 4 * (100_000 / 5) ** 2 / 1e9:.0f} GB | | | |")
                continue
            cmd = [sys.executable, __file__, "--worker", f"{workload}:{backend}:{dtype_name}",
                   "--threads", str(args.threads), "--repeats", str(args.repeats if workload != "d" else 1),
                   "--gue-csv", args.gue_csv, "--genome", args.genome, "--long-genome", args.long_genome]
            result = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": str(args.threads)})
            if result.returncode != 0:
                print(f"| {DESCRIPTIONS[workload]} | {backend} | {dtype_name} | failed: {result.stderr.strip().splitlines()[-1]} |")
                continue
            r = json.loads(result.stdout.strip().splitlines()[-1])
            rate = r["real_tokens"] / r["seconds"]
            if backend == "baseline":
                baseline_rate = rate
            ratio = f"{rate / baseline_rate:.2f}x" if baseline_rate else "n/a"
            fraction = r["flops"] / r["seconds"] / peaks[dtype_name]
            print(f"| {DESCRIPTIONS[workload]} | {backend} | {dtype_name} | {r['real_tokens']:,} / {r['padded_tokens']:,} | "
                  f"{rate:,.0f} | {ratio} | {fraction:.2f} of {SHORT[dtype_name]} | {r['peak_rss_gb']:.2f} |", flush=True)
    print("\nbf16 vs fp32, mean-pooled embeddings of the (a) and (c) sequences (cosine similarity):\n")
    print("| model | sequences | min | mean |\n|---|---:|---:|---:|")
    print("\n".join(bf16_agreement(args)))


if __name__ == "__main__":
    main()
