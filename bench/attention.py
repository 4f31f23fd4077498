"""Attention kernel benchmark on a CUDA device: this repo's Triton kernel vs SDPA with a float ALiBi mask
vs compiled FlexAttention with an ALiBi score_mod.

    python bench/attention.py [--dtype bfloat16] [--total-tokens 16384] [--heads 12] [--head-dim 64]

For each sequence length (512 ... 16k, batch = total_tokens / length) and one variable-length
batch, it prints forward and forward+backward TFLOP/s and the peak memory of the call. FLOPs
count the two attention matmuls on real (query, key) pairs of the same sequence, non-causal:
forward 4 * sum(L^2) * heads * head_dim; backward 2.5x forward (the FlashAttention convention).
SDPA gets the padded [B, H, Lmax, Lmax] bias (ALiBi plus key padding) in the compute dtype;
FlexAttention gets ALiBi as a score_mod and, for mixed lengths, a document block mask over the
packed tokens. Times are the median of --repeats calls after warm-up (CUDA events).
"""

import argparse
import random
import statistics

import torch

from dnabert2.bert_attention import alibi_slopes
from dnabert2.flash_attn_triton import flash_attn_varlen_func


def cuda_time(fn, repeats: int) -> tuple[float, float]:
    """(median seconds, peak bytes above the baseline) of fn()."""
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return statistics.median(times), torch.cuda.max_memory_allocated() - base


def packed_inputs(lengths, heads, head_dim, dtype):
    total = sum(lengths)
    q, k, v = (torch.randn(total, heads, head_dim, device="cuda", dtype=dtype, requires_grad=True) for _ in range(3))
    cu = torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()], dtype=torch.int32, device="cuda")
    return q, k, v, cu


def triton_fn(lengths, heads, head_dim, dtype, slopes):
    q, k, v, cu = packed_inputs(lengths, heads, head_dim, dtype)
    max_len = max(lengths)
    fwd = lambda: flash_attn_varlen_func(q, k, v, cu, max_len, slopes)  # noqa: E731
    return fwd, (q, k, v)


def sdpa_fn(lengths, heads, head_dim, dtype, slopes):
    batch, lmax = len(lengths), max(lengths)
    q, k, v = (torch.randn(batch, heads, lmax, head_dim, device="cuda", dtype=dtype, requires_grad=True) for _ in range(3))
    pos = torch.arange(lmax, device="cuda")
    bias = -slopes[:, None, None] * (pos[:, None] - pos[None, :]).abs().float()  # (heads, L, L)
    key_pad = pos[None, :] >= torch.tensor(lengths, device="cuda")[:, None]  # (batch, L)
    mask = bias[None].to(dtype).masked_fill(key_pad[:, None, None, :], torch.finfo(dtype).min)
    fwd = lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # noqa: E731
    return fwd, (q, k, v)


def flex_fn(lengths, heads, head_dim, dtype, slopes):
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    total = sum(lengths)
    q, k, v = (torch.randn(1, heads, total, head_dim, device="cuda", dtype=dtype, requires_grad=True) for _ in range(3))
    doc = torch.repeat_interleave(torch.arange(len(lengths), device="cuda"), torch.tensor(lengths, device="cuda"))
    start = torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()[:-1]], device="cuda")[doc]
    position = torch.arange(total, device="cuda") - start

    def alibi(score, b, h, q_idx, kv_idx):
        return score - slopes[h] * (position[q_idx] - position[kv_idx]).abs()

    def same_sequence(b, h, q_idx, kv_idx):
        return doc[q_idx] == doc[kv_idx]

    block_mask = create_block_mask(same_sequence, 1, None, total, total, device="cuda")
    compiled = torch.compile(flex_attention)
    fwd = lambda: compiled(q, k, v, score_mod=alibi, block_mask=block_mask)  # noqa: E731
    return fwd, (q, k, v)


KERNELS = (("triton (this repo)", triton_fn), ("sdpa + float mask", sdpa_fn), ("flex_attention (compiled)", flex_fn))
TABLE_HEADER = "| lengths | kernel | fwd TFLOP/s | fwd+bwd TFLOP/s | fwd+bwd peak MiB |\n|---|---|---:|---:|---:|"


def benchmark_shapes(total_tokens: int, seed: int = 0) -> list[tuple[str, list[int]]]:
    """(name, lengths): equal lengths 512 ... 16k filling total_tokens, then one variable-length batch."""
    rng = random.Random(seed)
    shapes = [(f"{n} x {total_tokens // n}", [n] * (total_tokens // n)) for n in (512, 1024, 2048, 4096, 8192, 16384)]
    varlen, left = [], total_tokens
    while left > 0:
        varlen.append(min(left, rng.randint(64, 4096)))
        left -= varlen[-1]
    shapes.append((f"varlen {len(varlen)} seqs", varlen))
    return shapes


def benchmark_rows(dtype, total_tokens: int, heads: int, head_dim: int, repeats: int):
    """Yield one dict per (shape, kernel): fwd and fwd+bwd TFLOP/s and peak MiB (None when out of memory)."""
    slopes = torch.tensor(alibi_slopes(heads), dtype=torch.float32, device="cuda")
    for name, lengths in benchmark_shapes(total_tokens):
        fwd_flops = 4 * sum(n * n for n in lengths) * heads * head_dim
        for kernel, build in KERNELS:
            row = {"lengths": name, "kernel": kernel, "fwd_tflops": None, "fwd_bwd_tflops": None, "peak_mib": None}
            try:
                fwd, inputs = build(lengths, heads, head_dim, dtype, slopes)
                t_fwd, _ = cuda_time(lambda: fwd(), repeats)
                grad = torch.randn_like(fwd())

                def step():
                    out = fwd()
                    torch.autograd.grad(out, inputs, grad)

                t_step, peak = cuda_time(step, repeats)
                row.update(fwd_tflops=fwd_flops / t_fwd / 1e12, fwd_bwd_tflops=3.5 * fwd_flops / t_step / 1e12, peak_mib=peak / 2**20)
            except torch.OutOfMemoryError:
                pass
            finally:
                torch.cuda.empty_cache()
            yield row


def table_line(row: dict) -> str:
    if row["fwd_tflops"] is None:
        return f"| {row['lengths']} | {row['kernel']} | out of memory | | |"
    return f"| {row['lengths']} | {row['kernel']} | {row['fwd_tflops']:.1f} | {row['fwd_bwd_tflops']:.1f} | {row['peak_mib']:.0f} |"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16"])
    p.add_argument("--total-tokens", type=int, default=16384)
    p.add_argument("--heads", type=int, default=12)
    p.add_argument("--head-dim", type=int, default=64)
    p.add_argument("--repeats", type=int, default=20)
    args = p.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("bench/attention.py measures GPU kernels: no CUDA device here")
    print(f"{torch.cuda.get_device_name()} | {args.dtype} | heads {args.heads} | head_dim {args.head_dim} | torch {torch.__version__}")
    print(TABLE_HEADER)
    for row in benchmark_rows(getattr(torch, args.dtype), args.total_tokens, args.heads, args.head_dim, args.repeats):
        print(table_line(row), flush=True)


if __name__ == "__main__":
    main()
