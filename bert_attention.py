"""Attention on the packed (unpadded) layout: ALiBi and the three backends.

Lives here: the ALiBi slopes (the original's exact per-head order), and `varlen_attention`, which
dispatches packed `qkv` to one backend:
    eager   padded matmul + ALiBi + softmax; the only backend that returns probabilities.
    sdpa    attention on length buckets (no compute on padding beyond `MAX_BUCKET_PADDING`), with
            the ALiBi bias built per query chunk in the compute dtype and shared by all layers, so
            memory stays O(chunk * L) instead of O(L^2). torch's scaled_dot_product_attention,
            except for short blocks on CPU, where two matmuls and a softmax are faster. CPU and GPU.
    triton  the FlashAttention-2 kernel of flash_attn_triton.py, ALiBi computed in-kernel. CUDA
            tensors only (or the Triton interpreter, TRITON_INTERPRET=1).
Not here: projections, residuals or LayerNorm (bert_layers.py); padding bookkeeping (bert_padding.py).

The score of query i and key j of the same sequence is  q.k * scale - slope_h * |i - j|;
tokens of different sequences never attend to each other.
"""

import math
from collections.abc import Callable
from functools import lru_cache

import torch
import torch.nn.functional as F

from .bert_padding import PackedBatch
from .configuration_bert import ATTENTION_BACKENDS
from .flash_attn_triton import TRITON_AVAILABLE, TRITON_INTERPRET, flash_attn_varlen_func

# Upper bound on the ALiBi bias elements the sdpa backend keeps per forward (shared by all layers);
# one query chunk holds at most a quarter of it.
SDPA_BIAS_BUDGET = 1 << 26
# Blocks up to this many tokens use plain matmuls + softmax on CPU instead of torch's fused kernel.
CPU_MATMUL_ATTENTION_MAX_LEN = 512


def alibi_slopes(num_heads: int) -> list[float]:
    """Per-head ALiBi slopes in the original's order.

    For a power of two n the slopes are the geometric sequence 2^(-8/n), 2^(-16/n), ...
    Otherwise the first 2^floor(log2 n) heads take that sequence and the remaining heads take
    every other slope of the sequence for twice that power, in order (so they are not sorted).
    """
    if num_heads < 1:
        raise ValueError(f"num_heads must be positive, got {num_heads}")

    def power_of_two(n: int) -> list[float]:
        start = 2.0 ** (-(2.0 ** -(math.log2(n) - 3)))
        return [start ** (i + 1) for i in range(n)]

    if math.log2(num_heads).is_integer():
        return power_of_two(num_heads)
    closest = 2 ** math.floor(math.log2(num_heads))
    return power_of_two(closest) + alibi_slopes(2 * closest)[0::2][: num_heads - closest]


@lru_cache(maxsize=16)
def alibi_slopes_tensor(num_heads: int, device: torch.device) -> torch.Tensor:
    """(heads,) float32 slopes on `device`; cached, built once per (heads, device).

    Built outside inference mode, so that a tensor first made under torch.inference_mode() can
    still be saved for backward when the same process trains later.
    """
    with torch.inference_mode(False):
        return torch.tensor(alibi_slopes(num_heads), dtype=torch.float32, device=device)


def _alibi_bias(slopes: torch.Tensor, q_pos: torch.Tensor, k_pos: torch.Tensor) -> torch.Tensor:
    """-slope * |i - j| in float32. q_pos (..., Lq), k_pos (..., Lk) -> (..., heads, Lq, Lk)."""
    distance = (q_pos[..., None, :, None] - k_pos[..., None, None, :]).abs().float()
    return -slopes[:, None, None] * distance


def eager_attention(
    qkv: torch.Tensor, packed: PackedBatch, slopes: torch.Tensor, scale: float, dropout_p: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Padded reference attention. Returns (out (total, heads, head_dim), probs (batch, heads, L, L))."""
    q, k, v = packed.pad(qkv).permute(2, 0, 3, 1, 4)  # each (batch, heads, L, head_dim)
    scores = torch.matmul(q, k.transpose(-1, -2)) * scale  # (batch, heads, L, L)
    pos = packed.positions  # (batch, L)
    scores = scores + _alibi_bias(slopes, pos, pos).to(scores.dtype)
    key_is_pad = ~packed.attention_mask[:, None, None, :]  # (batch, 1, 1, L)
    scores = scores.masked_fill(key_is_pad, torch.finfo(scores.dtype).min)
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
    out = torch.matmul(F.dropout(probs, p=dropout_p), v)  # (batch, heads, L, head_dim)
    return packed.unpad(out.transpose(1, 2)), probs


def _chunk_bias(
    slopes: torch.Tensor, start: int, rows: int, width: int, key_mask: torch.Tensor | None, dtype: torch.dtype,
    cache: dict, key: tuple,
) -> torch.Tensor:
    """ALiBi (+ key padding) bias for query rows [start, start + rows) of a block of `width` columns.

    Shape (n or 1, heads, rows, width), 4-D so that torch picks its fused CPU/GPU kernels. Built in
    float32 and rounded once to the compute dtype. Kept in the per-forward cache (every layer uses
    the same bias) while the cache holds fewer than SDPA_BIAS_BUDGET elements.
    """
    cache_key = (key, start, dtype)
    if cache_key in cache:
        return cache[cache_key]
    positions = torch.arange(width, device=slopes.device)
    bias = _alibi_bias(slopes, positions[start : start + rows], positions).to(dtype)[None]  # (1, heads, rows, W)
    if key_mask is not None:
        bias = bias.masked_fill(~key_mask[:, None, None, :], torch.finfo(dtype).min)  # (n, heads, rows, W)
    cached = cache.setdefault("sdpa_bias_elements", 0)
    if cached + bias.numel() <= SDPA_BIAS_BUDGET:
        cache[cache_key] = bias
        cache["sdpa_bias_elements"] = cached + bias.numel()
    return bias


def _sdpa_query_chunks(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_mask: torch.Tensor | None, slopes: torch.Tensor,
    scale: float, dropout_p: float, cache: dict, key: tuple,
) -> torch.Tensor:
    """SDPA over one block, one chunk of query rows at a time so the bias stays O(rows * W).

    q, k, v: (n, heads, W, head_dim); key_mask: (n, W) bool or None. Returns (n, heads, W, head_dim).
    """
    n, heads, width, _ = q.shape
    rows = max(1, SDPA_BIAS_BUDGET // 4 // (n * heads * width))
    # On CPU, torch's fused kernel is slower than two matmuls and a softmax for short blocks
    # (measured: 3x in bf16 at 100 tokens), and faster for long ones.
    matmuls = q.device.type == "cpu" and width <= CPU_MATMUL_ATTENTION_MAX_LEN
    outs = []
    for start in range(0, width, rows):
        bias = _chunk_bias(slopes, start, min(rows, width - start), width, key_mask, q.dtype, cache, key)
        chunk = q[:, :, start : start + rows]
        if matmuls:
            scores = torch.matmul(chunk, k.transpose(-1, -2)) * scale + bias  # (n, heads, rows, W)
            probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
            outs.append(torch.matmul(F.dropout(probs, p=dropout_p), v))
        else:
            outs.append(F.scaled_dot_product_attention(chunk, k, v, attn_mask=bias, dropout_p=dropout_p, scale=scale))
    return outs[0] if len(outs) == 1 else torch.cat(outs, dim=2)


def sdpa_attention(
    qkv: torch.Tensor, packed: PackedBatch, slopes: torch.Tensor, scale: float, dropout_p: float
) -> tuple[torch.Tensor, None]:
    """Bucketed, query-chunked SDPA. Returns (out (total, heads, head_dim), None)."""
    total, _, heads, head_dim = qkv.shape
    padded_source = None  # qkv plus one zero row that padding positions point at, built on demand
    outs, rows = [], []
    for b, bucket in enumerate(packed.buckets):
        n, width = len(bucket.seq_ids), bucket.seqlen
        if bucket.rows is not None:  # an unpadded run of packed rows: a view, no copy
            block = qkv[bucket.rows[0] : bucket.rows[1]].view(n, width, 3, heads, head_dim)
        else:
            if padded_source is None:
                padded_source = torch.cat([qkv, qkv.new_zeros(1, 3, heads, head_dim)])
            block = padded_source.index_select(0, bucket.gather_index).view(n, width, 3, heads, head_dim)
        q, k, v = block.permute(2, 0, 3, 1, 4)  # each (n, heads, W, head_dim)
        out = _sdpa_query_chunks(q, k, v, bucket.key_mask, slopes, scale, dropout_p, packed.cache, ("sdpa", b))
        out = out.transpose(1, 2).reshape(n * width, heads, head_dim)
        if bucket.rows is not None:
            outs.append(out)
            rows.append(torch.arange(*bucket.rows, device=qkv.device))
        else:
            outs.append(out[bucket.valid])
            rows.append(bucket.gather_index[bucket.valid])
    if len(outs) == 1 and packed.buckets[0].rows == (0, total):  # one unpadded run in packed order
        return outs[0], None
    order = torch.argsort(torch.cat(rows))  # packed row r is at position order[r] of the concatenation
    return torch.cat(outs).index_select(0, order), None


def triton_attention(
    qkv: torch.Tensor, packed: PackedBatch, slopes: torch.Tensor, scale: float, dropout_p: float
) -> tuple[torch.Tensor, None]:
    """FlashAttention-2 Triton kernel on the packed layout. Returns (out (total, heads, head_dim), None)."""
    if not TRITON_AVAILABLE:
        raise ImportError("attn_implementation='triton' needs the `triton` package, which is not importable here.")
    if not qkv.is_cuda and not TRITON_INTERPRET:
        raise RuntimeError(
            "attn_implementation='triton' runs on CUDA tensors only, but the inputs are on "
            f"{qkv.device}. Use attn_implementation='sdpa' on CPU (or set TRITON_INTERPRET=1 before "
            "importing the model to run the kernel in Triton's slow interpreter)."
        )
    if dropout_p > 0.0:
        raise ValueError(
            "attn_implementation='triton' has no attention dropout; set attention_probs_dropout_prob=0 "
            "(the DNABERT-2 default) or use 'sdpa'."
        )
    q, k, v = qkv.unbind(dim=1)  # each (total, heads, head_dim), strided views of qkv
    out = flash_attn_varlen_func(q, k, v, packed.cu_seqlens, packed.max_seqlen, slopes, scale)
    return out, None


_BACKENDS = {"eager": eager_attention, "sdpa": sdpa_attention, "triton": triton_attention}
assert tuple(_BACKENDS) == ATTENTION_BACKENDS


def register_attention_backend(name: str, fn: Callable) -> None:
    """Add an attention function `fn(qkv, packed, slopes, scale, dropout_p) -> (out, probs or None)`
    under `name`, for benchmarks and experiments; the built-in backends cannot be replaced."""
    if name in ATTENTION_BACKENDS:
        raise ValueError(f"{name!r} is a built-in attention backend {ATTENTION_BACKENDS}; pick another name")
    _BACKENDS[name] = fn


def varlen_attention(
    backend: str, qkv: torch.Tensor, packed: PackedBatch, slopes: torch.Tensor, scale: float, dropout_p: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Attention for packed `qkv` (total, 3, heads, head_dim) with ALiBi `slopes` (heads,).

    Returns (out (total, heads, head_dim), probs (batch, heads, L, L) or None); only `eager`
    returns probabilities.
    """
    try:
        fn = _BACKENDS[backend]
    except KeyError:
        raise ValueError(
            f"Unknown attention backend {backend!r}; DNABERT-2 supports {ATTENTION_BACKENDS}"
            f"{' and the registered ' + str(sorted(set(_BACKENDS) - set(ATTENTION_BACKENDS))) if len(_BACKENDS) > len(ATTENTION_BACKENDS) else ''}."
        ) from None
    return fn(qkv, packed, slopes, scale, dropout_p)
