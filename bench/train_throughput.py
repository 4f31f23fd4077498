"""Training throughput: tokens/s and model FLOP utilisation (MFU) for a preset, CPU or GPU.

    python bench/train_throughput.py [--preset dnabert2-117m] [--batch 8] [--steps 3] [--device cpu|cuda]
                                     [--attn sdpa|triton] [--dtypes float32,bfloat16]

One training step = forward, backward and an AdamW update of BertForMaskedLM on a batch of real
genome crops (phage lambda, 500-1500 bp), masked 15%. float32 runs plain; bfloat16 runs under
autocast with float32 weights (as Trainer --bf16 does). MFU = model FLOPs / time / matmul peak,
with the peak measured in the same run (2048^2 matmul on CPU, 8192^2 on GPU) and model FLOPs
= 3 x forward FLOPs (linear layers 2 x weights per token, attention 4 L hidden per token and
layer, and the MLM head on the masked positions). Median of --steps after one warm-up step.
"""

import argparse
import random
import statistics
import time

import torch

from dnabert2.configuration_bert import PRESETS, BertConfig
from dnabert2.dna_tokenizer import load_tokenizer
from dnabert2.genome_io import iter_records
from dnabert2.modeling_bert import IGNORE_INDEX, BertForMaskedLM
from dnabert2.pretraining_data import MLMCollator, MLMMasker

from bench_paths import ROOT  # bench/bench_paths.py


def matmul_peak(dtype, device: str) -> float:
    n = 2048 if device == "cpu" else 8192
    a, b = torch.randn(n, n, dtype=dtype, device=device), torch.randn(n, n, dtype=dtype, device=device)
    for _ in range(3):
        a @ b
    times = []
    for _ in range(10):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        a @ b
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return 2 * n**3 / min(times)


def batch_of_crops(tokenizer, batch: int, seed: int = 0) -> dict:
    genome = "".join(seq for _, seq in iter_records([str(ROOT / "data" / "genomes" / "phage_lambda.fa.gz")]))
    rng = random.Random(seed)
    crops = []
    for _ in range(batch):
        n = rng.randint(500, 1500)
        start = rng.randrange(len(genome) - n)
        crops.append(genome[start : start + n])
    masker, generator = MLMMasker(tokenizer), torch.Generator().manual_seed(seed)
    examples = []
    for ids in tokenizer(crops)["input_ids"]:
        masked, labels = masker(torch.tensor(ids), generator)
        examples.append({"input_ids": masked, "labels": labels})
    return MLMCollator(tokenizer)(examples)


def model_flops(batch: dict, config) -> float:
    h, i, layers, vocab = config.hidden_size, config.intermediate_size, config.num_hidden_layers, config.vocab_size
    lengths = batch["attention_mask"].sum(1).tolist()
    masked = int((batch["labels"] != IGNORE_INDEX).sum())
    linear = 2 * (3 * h * h + h * h + 2 * i * h + i * h) * layers
    forward = sum(n * linear + 4 * n * n * h * layers for n in lengths) + masked * 2 * (h * h + h * vocab)
    return 3 * forward


def measure(preset: str, batch_size: int, steps: int, device: str, attn: str, dtype_names: list[str]):
    """Yield the header line, then one dict per dtype: step_s, tokens_per_s, model_tflops, peak_tflops, mfu."""
    tokenizer = load_tokenizer(str(ROOT))
    batch = {k: v.to(device) for k, v in batch_of_crops(tokenizer, batch_size).items()}
    config = BertConfig(**PRESETS[preset], attn_implementation=attn)
    flops = model_flops(batch, config)
    tokens = int(batch["attention_mask"].sum())
    device_name = torch.cuda.get_device_name() if device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    yield (f"{preset} | {device_name} | attn {attn} | batch {batch_size} ({tokens:,} real tokens, "
           f"{batch['attention_mask'].numel():,} padded) | torch {torch.__version__}")
    for dtype_name in dtype_names:
        dtype = getattr(torch, dtype_name)
        peak = matmul_peak(dtype, device)
        torch.manual_seed(0)
        model = BertForMaskedLM(config).to(device).train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        times = []
        for _ in range(steps + 1):
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            with torch.autocast(device, dtype=dtype, enabled=dtype != torch.float32):
                loss = model(**batch).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if device == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        step = statistics.median(times[1:])
        yield {"dtype": dtype_name, "step_s": step, "tokens_per_s": tokens / step, "model_tflops": flops / step / 1e12,
               "peak_tflops": peak / 1e12, "mfu": flops / step / peak}


TABLE_HEADER = "| dtype | step s | tokens/s | model TFLOP/s | matmul peak TFLOP/s | MFU |\n|---|---:|---:|---:|---:|---:|"


def table_line(row: dict) -> str:
    return (f"| {row['dtype']} | {row['step_s']:.2f} | {row['tokens_per_s']:,.0f} | {row['model_tflops']:.3f} | "
            f"{row['peak_tflops']:.3f} | {row['mfu']:.2f} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="dnabert2-117m", choices=sorted(PRESETS))
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--attn", default="sdpa", choices=["sdpa", "eager", "triton"])
    p.add_argument("--dtypes", default="float32,bfloat16")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch default)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = measure(args.preset, args.batch, args.steps, args.device, args.attn, args.dtypes.split(","))
    print(next(rows))
    print(TABLE_HEADER)
    for row in rows:
        print(table_line(row), flush=True)


if __name__ == "__main__":
    main()
