"""CPU inference benchmark: tokens/s, peak RSS and roofline fraction per workload and backend.

    python bench/cpu_inference.py [--threads 2] [--repeats 5] [--warmup 1] [--rounds 1] [--workloads abcd]

Model: the --preset (default dnabert2-117m) with random weights (speed does not depend on the values).
Workloads (real sequences): (a) 32 x 500 bp GUE EMP sequences, (b) one 10 kbp genome slice,
(c) 8 genome slices of 100..2000 bp, (d) one 100 kbp genome slice.
Rows: `baseline` reproduces the original's CPU path (unpadded linear layers, but attention on
the padded batch with a materialised fp32 [B, H, L, L] ALiBi + mask bias shared by every layer);
then this repo's backends. Each (workload, row) runs in a fresh process so that peak RSS is its
own; tokens/s is the median of --repeats forward passes after --warmup unmeasured ones
(workload (d): one pass, no warm-up). oneDNN picks and prepares its kernels during the first
passes of a process (bf16 most of all), so one warm-up pass leaves that in the timing and
--warmup 3 measures the steady state of a process that embeds many batches. With --rounds R the
rows take turns R times and each reports its median (the machine's process-to-process spread is
about 10%, as large as the differences between near-equal rows); --same-process times all rows
of a workload in one process, pass by pass in turn, which removes that spread from the ratios
(peak RSS is then the shared process's). The roofline is the
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

from bench_paths import ROOT  # bench/bench_paths.py

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

    if "baseline" not in bert_attention._BACKENDS:
        bert_attention.register_attention_backend("baseline", baseline)


def flops(lengths: list[int], config) -> float:
    h, i, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    linear = 2 * (3 * h * h + h * h + 2 * i * h + i * h) * layers  # per token
    return sum(n * linear + 4 * n * n * h * layers for n in lengths)


def matmul_peak(dtype_name: str, threads: int, size: int = 2048) -> float:
    import torch

    torch.set_num_threads(threads)
    dtype = getattr(torch, dtype_name)
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    for _ in range(3):
        a @ b
    times = []
    for _ in range(10):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * size**3 / min(times)


def run_rows(workload: str, rows: list[tuple[str, str]], args) -> dict:
    """Runs in its own process: tokens, seconds per pass and peak RSS for each (backend, dtype) row.

    With several rows the passes take turns (row 1, row 2, ..., row 1, ...) on models with the
    same weights, so every row sees the same machine state; peak RSS is then the process's.
    """
    import torch

    from dnabert2.configuration_bert import PRESETS, BertConfig
    from dnabert2.dna_tokenizer import load_tokenizer
    from dnabert2.modeling_bert import BertModel

    torch.set_num_threads(args.threads)
    install_baseline()
    tokenizer = load_tokenizer(str(ROOT))
    seqs = sequences(workload, args)
    batch = tokenizer(seqs, padding=True, return_tensors="pt", verbose=False)
    config = BertConfig(**PRESETS[args.preset])

    def build(dtype_name: str):
        torch.manual_seed(0)  # the same weights in every dtype
        return BertModel(config, add_pooling_layer=False).to(getattr(torch, dtype_name)).eval()

    models = {d: build(d) for d in sorted({d for _, d in rows})}
    warmup = args.warmup if args.repeats > 1 else 0  # a single pass (workload (d)) is timed cold
    times: dict[tuple[str, str], list[float]] = {row: [] for row in rows}
    with torch.inference_mode():
        for _ in range(warmup + args.repeats):
            for backend, dtype_name in rows:
                m = models[dtype_name]
                m.config._attn_implementation = backend  # set after construction: "baseline" is not a transformers name
                start = time.perf_counter()
                m(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
                times[(backend, dtype_name)].append(time.perf_counter() - start)
    lengths = batch["attention_mask"].sum(1).tolist()
    peak_rss_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    return {
        f"{backend}:{dtype_name}": {
            "real_tokens": sum(lengths),
            "padded_tokens": batch["attention_mask"].numel(),
            "seconds": statistics.median(row_times[warmup:]),
            "flops": flops(lengths, config),
            "peak_rss_gb": peak_rss_gb,
        }
        for (backend, dtype_name), row_times in times.items()
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
    models = {f"{args.preset} preset, random weights": lambda: BertModel(BertConfig(**PRESETS[args.preset]), add_pooling_layer=False)}
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


def baseline_too_big(workload: str, backend: str) -> bool:
    """The baseline's materialised [B, H, L, L] bias does not fit in memory for workload (d)."""
    return workload == "d" and backend == "baseline"


def measure_in_subprocess(workload: str, rows: list[tuple[str, str]], args) -> dict | str:
    """`run_rows` in a fresh process (so peak RSS is its own): its results, or the error line."""
    cmd = [sys.executable, __file__, "--worker", workload, "--rows", ",".join(f"{b}:{d}" for b, d in rows),
           "--threads", str(args.threads), "--repeats", str(args.repeats if workload != "d" else 1),
           "--warmup", str(args.warmup), "--preset", args.preset,
           "--gue-csv", args.gue_csv, "--genome", args.genome, "--long-genome", args.long_genome]
    result = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": str(args.threads)})
    if result.returncode != 0:
        return result.stderr.strip().splitlines()[-1]
    return json.loads(result.stdout.strip().splitlines()[-1])


def measure_workload(workload: str, rows: list[tuple[str, str]], args) -> tuple[dict, dict]:
    """Each row's results over --rounds rounds, and the error of each row that failed.

    The rows take turns within a round (each in a fresh process, or all in one with
    --same-process), so a slow phase of the machine does not land on one row alone.
    """
    results: dict[tuple[str, str], list[dict]] = {row: [] for row in rows}
    failures: dict[tuple[str, str], str] = {}
    runnable = [row for row in rows if not baseline_too_big(workload, row[0])]
    groups = [runnable] if args.same_process else [[row] for row in runnable]
    for _ in range(args.rounds):
        for group in groups:
            if any(row in failures for row in group):
                continue
            outcome = measure_in_subprocess(workload, group, args)
            for row in group:
                if isinstance(outcome, str):
                    failures[row] = outcome
                else:
                    results[row].append(outcome[f"{row[0]}:{row[1]}"])
    return results, failures


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--preset", default="dnabert2-117m", help="model size (random weights)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1, help="unmeasured forward passes before the --repeats timed ones")
    p.add_argument("--gue-csv", default=str(ROOT / "bench" / "data" / "emp_h3_test_32.csv"))
    p.add_argument("--genome", default=str(ROOT / "data" / "genomes" / "phage_lambda.fa.gz"))
    p.add_argument("--long-genome", default=str(ROOT / "data" / "genomes" / "ecoli_k12_W3110_first100kbp.fa.gz"))
    p.add_argument("--rounds", type=int, default=1, help="times each row is measured, the rows taking turns")
    p.add_argument("--same-process", action="store_true",
                   help="time all rows of a workload in one process, pass by pass in turn (peak RSS is then shared)")
    p.add_argument("--workloads", default="abcd")
    p.add_argument("--rows", default=",".join(f"{b}:{d}" for b, d in ROWS), help="backend:dtype,...")
    p.add_argument("--peak-size", type=int, default=2048,
                   help="side of the square matmul that measures the roofline (smaller for smoke runs: on CPUs "
                        "without native bf16, e.g. AVX2 only, one 2048^2 bf16 matmul takes tens of seconds)")
    p.add_argument("--worker", help=argparse.SUPPRESS)  # a workload: run its --rows here, print JSON
    args = p.parse_args()

    rows = [tuple(r.split(":")) for r in args.rows.split(",")]
    if args.worker:  # child process: one workload, its rows
        print(json.dumps(run_rows(args.worker, rows, args)))
        return

    peaks = {d: matmul_peak(d, args.threads, args.peak_size) for d in sorted({d for _, d in rows})}
    print(f"matmul roofline ({args.threads} threads, {args.peak_size}^2): "
          + ", ".join(f"{d} {peak / 1e9:.0f} GFLOP/s" for d, peak in peaks.items()) + "\n")
    print(f"{args.rounds} round(s) per row; tokens/s is the median over rounds, the range its min-max\n")
    print("| workload | backend | dtype | real / padded tokens | tokens/s | range over rounds | vs baseline | roofline fraction | peak RSS GB |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    for workload in args.workloads:
        results, failures = measure_workload(workload, rows, args)
        baseline_rate = None
        for backend, dtype_name in rows:
            prefix = f"| {DESCRIPTIONS[workload]} | {backend} | {dtype_name} |"
            if baseline_too_big(workload, backend):
                print(f"{prefix} | skipped: its bias alone is {12 * 4 * (100_000 / 5) ** 2 / 1e9:.0f} GB | | | | |")
                continue
            if (backend, dtype_name) in failures:
                print(f"{prefix} failed: {failures[(backend, dtype_name)]} |")
                continue
            runs = results[(backend, dtype_name)]
            r = runs[0]  # tokens and FLOPs are the same in every round
            seconds = statistics.median(run["seconds"] for run in runs)
            rate = r["real_tokens"] / seconds
            rates = [r["real_tokens"] / run["seconds"] for run in runs]
            if backend == "baseline":
                baseline_rate = rate
            ratio = f"{rate / baseline_rate:.2f}x" if baseline_rate else "n/a"
            fraction = r["flops"] / seconds / peaks[dtype_name]
            rss = "shared" if args.same_process else f"{max(run['peak_rss_gb'] for run in runs):.2f}"
            spread = f"{min(rates):,.0f}-{max(rates):,.0f}"
            print(f"{prefix} {r['real_tokens']:,} / {r['padded_tokens']:,} | {rate:,.0f} | {spread} | {ratio} | "
                  f"{fraction:.2f} of {SHORT[dtype_name]} | {rss} |", flush=True)
    print("\nbf16 vs fp32, mean-pooled embeddings of the (a) and (c) sequences (cosine similarity):\n")
    print("| model | sequences | min | mean |\n|---|---:|---:|---:|")
    print("\n".join(bf16_agreement(args)))


if __name__ == "__main__":
    main()
