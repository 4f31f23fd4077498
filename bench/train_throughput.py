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
from pathlib import Path

import torch

from dnabert2.configuration_bert import PRESETS, BertConfig
from dnabert2.dna_tokenizer import load_tokenizer
from dnabert2.genome_io import iter_records
from dnabert2.modeling_bert import IGNORE_INDEX, BertForMaskedLM
from dnabert2.pretraining_data import MLMCollator, MLMMasker

ROOT = Path(__file__).resolve().parent.parent


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

    tokenizer = load_tokenizer(str(ROOT))
    batch = {k: v.to(args.device) for k, v in batch_of_crops(tokenizer, args.batch).items()}
    config = BertConfig(**PRESETS[args.preset], attn_implementation=args.attn)
    flops = model_flops(batch, config)
    tokens = int(batch["attention_mask"].sum())
    device_name = torch.cuda.get_device_name() if args.device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"{args.preset} | {device_name} | attn {args.attn} | batch {args.batch} ({tokens:,} real tokens, "
          f"{batch['attention_mask'].numel():,} padded) | torch {torch.__version__}")
    print("| dtype | step s | tokens/s | model TFLOP/s | matmul peak TFLOP/s | MFU |")
    print("|---|---:|---:|---:|---:|---:|")
    for dtype_name in args.dtypes.split(","):
        dtype = getattr(torch, dtype_name)
        peak = matmul_peak(dtype, args.device)
        torch.manual_seed(0)
        model = BertForMaskedLM(config).to(args.device).train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        times = []
        for _ in range(args.steps + 1):
            if args.device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            with torch.autocast(args.device, dtype=dtype, enabled=dtype != torch.float32):
                loss = model(**batch).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if args.device == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        step = statistics.median(times[1:])
        print(f"| {dtype_name} | {step:.2f} | {tokens / step:,.0f} | {flops / step / 1e12:.3f} | "
              f"{peak / 1e12:.3f} | {flops / step / peak:.2f} |", flush=True)


if __name__ == "__main__":
    main()
