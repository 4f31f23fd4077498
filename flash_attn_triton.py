"""FlashAttention-2 in Triton for packed variable-length batches, with ALiBi computed in the kernel.

Lives here: `flash_attn_varlen_func` (an autograd.Function: Triton forward, Triton backward for
dq, dk, dv) and its three kernels. Not here: the model or any padding logic.

Layout. q, k, v are (total_tokens, heads, head_dim), sequences packed back to back;
cu_seqlens (batch + 1,) int32 holds their boundaries. Each program handles one
(block of rows, sequence, head) tile and never reads across a sequence boundary, so there is no
padding and no mask tensor. The score of query i and key j in one sequence is

    s_ij = (q_i . k_j) * softmax_scale - slope_h * |i - j|

and nothing of size L^2 is ever stored, forward or backward.

Algorithm (Dao 2023, FlashAttention-2). The forward walks the key blocks of its row block with
an online softmax (running max m, running sum l, rescaled accumulator) and saves the
log-sum-exp per row. The backward recomputes P = exp(S - lse) tile by tile: one kernel
parallel over key blocks accumulates dK and dV, another parallel over query blocks
accumulates dQ, so no atomics are needed. D_i = rowsum(dO_i * O_i) is precomputed. Exponentials
use exp2 with log2(e) folded into the scale.

Precision. fp16 and bf16 inputs are multiplied on tensor cores and accumulated in fp32.
fp32 inputs are computed in IEEE fp32 (`input_precision="ieee"`), never downcast; pass
`fp32_precision="tf32"` to trade accuracy for speed explicitly.

Tuning. Block sizes, warps and stages are autotuned per head-dim bucket on the GPU; under
TRITON_INTERPRET=1 a single small config is used, because the interpreter cannot autotune.
`import triton` is guarded, so this module imports (and raises only when called) where Triton is
not installed.
"""

import contextlib
import math
import os

import torch

try:
    import triton
    import triton.language as tl

    TRITON_AVAILABLE = True
except ImportError:  # macOS, Windows, CPU-only images
    triton = None
    tl = None
    TRITON_AVAILABLE = False

LOG2E = 1.4426950408889634  # log2(e): exp(x) = exp2(x * LOG2E); the kernels read it as _LOG2E
MAX_HEAD_DIM = 128
# The one read of TRITON_INTERPRET: Triton reads it when `triton.jit` decorates the kernels below, at
# import of this module, so later changes to the environment change nothing. bert_attention.py asks here.
TRITON_INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"


# GPU autotune configs per kernel: (BLOCK_M, BLOCK_N, num_warps, num_stages, largest BLOCK_D).
# A config is listed only where it compiles for both sm_80 and sm_90 in fp16 and bf16 with no
# register spills, within the target's shared memory, and (sm_90) on wgmma; tests/test_triton_aot.py
# compiles every one ahead of time and checks that, and BENCHMARKS.md has the measured table.
# Rules that fell out of the measurements: 128-row tiles need 8 warps; at head_dim 128 the forward
# drops 128 x 128 (spills on sm_80, 288 KB of shared memory at 4 stages) and the backward kernels
# keep only their 8-warp configs; the dQ kernel needs BLOCK_M >= 64 to use wgmma.
GPU_CONFIGS = {
    "fwd": [(64, 64, w, s, 128) for w in (4, 8) for s in (2, 3, 4)]
    + [(128, n, 8, s, 128) for n in (32, 64) for s in (2, 3, 4)]
    + [(128, 128, 8, s, 64) for s in (2, 3, 4)],
    "bwd_dkdv": [(32, 64, 8, s, 128) for s in (2, 3)] + [(32, 64, 4, s, 64) for s in (2, 3)] + [(64, 64, 8, 2, 64)],
    "bwd_dq": [(64, 64, 8, s, 128) for s in (2, 3)] + [(64, 64, 4, s, 64) for s in (2, 3)] + [(128, 64, 8, s, 64) for s in (2, 3)],
}
# The one config under TRITON_INTERPRET=1: the interpreter cannot autotune, and small blocks keep it fast.
INTERPRETER_CONFIG = (16, 16, 1, 1, MAX_HEAD_DIM)


def _config_table(kernel: str) -> list:
    """The (BLOCK_M, BLOCK_N, num_warps, num_stages, largest BLOCK_D) rows `kernel` autotunes over here."""
    return [INTERPRETER_CONFIG] if TRITON_INTERPRET else GPU_CONFIGS[kernel]


def _configs(kernel: str) -> list:
    return [triton.Config({"BLOCK_M": m, "BLOCK_N": n}, num_warps=w, num_stages=s) for m, n, w, s, _ in _config_table(kernel)]


def _largest_block_d(kernel: str, config) -> int:
    table = _config_table(kernel)
    key = (config.kwargs["BLOCK_M"], config.kwargs["BLOCK_N"], config.num_warps, config.num_stages)
    return max((row[4] for row in table if row[:4] == key), default=MAX_HEAD_DIM)  # a pinned config is not pruned


def _head_dim_pruner(kernel: str):
    """early_config_prune for `kernel`: drop the configs not listed for this BLOCK_D."""

    def prune(configs, named_args, **meta):
        kept = [c for c in configs if meta["BLOCK_D"] <= _largest_block_d(kernel, c)]
        if not kept:
            raise ValueError(f"no {kernel} autotune config for BLOCK_D={meta['BLOCK_D']} (head_dim <= {MAX_HEAD_DIM})")
        return kept

    return prune


if TRITON_AVAILABLE:
    _AUTOTUNE_KEY = ["BLOCK_D", "IS_FP32", "INPUT_PRECISION"]
    _LOG2E = tl.constexpr(LOG2E)  # jit functions read only constexpr globals

    @triton.jit
    def _tile(Base, seq_start, positions, stride_t, head, stride_h, offs_d):
        """Pointers to `positions` of one sequence and head of a packed (total, heads, head_dim)
        tensor: a (len(positions), BLOCK_D) tile."""
        return Base + (seq_start + positions)[:, None] * stride_t + head * stride_h + offs_d[None, :]

    @triton.jit
    def _slope_log2(Slopes, head, HAS_ALIBI: tl.constexpr):
        """The ALiBi slope of `head` in log2 units (0 without ALiBi)."""
        return tl.load(Slopes + head) * _LOG2E if HAS_ALIBI else 0.0

    @triton.jit
    def _alibi_scores(scores, rows, cols, slope_log2, seqlen, HAS_ALIBI: tl.constexpr):
        """Add the ALiBi bias (in log2 units) and mask keys past the end of the sequence."""
        if HAS_ALIBI:
            scores -= slope_log2 * tl.abs(rows[:, None] - cols[None, :]).to(tl.float32)
        return tl.where(cols[None, :] < seqlen, scores, float("-inf"))

    @triton.jit
    def _bwd_probs(q, k, lse, rows, cols, slope_log2, seqlen, qk_scale, HAS_ALIBI: tl.constexpr, INPUT_PRECISION: tl.constexpr):
        """What both backward kernels recompute on one (BLOCK_M, BLOCK_N) tile of queries `rows` and keys
        `cols`: P = exp2(S - lse), fp32. Rows past the end have lse = inf, so P = 0 there."""
        s = tl.dot(q, tl.trans(k), input_precision=INPUT_PRECISION) * qk_scale  # (BLOCK_M, BLOCK_N)
        s = _alibi_scores(s, rows, cols, slope_log2, seqlen, HAS_ALIBI)
        return tl.exp2(s - lse[:, None])

    @triton.autotune(configs=_configs("fwd"), key=_AUTOTUNE_KEY, prune_configs_by={"early_config_prune": _head_dim_pruner("fwd")})
    @triton.jit
    def _fwd_kernel(
        Q, K, V, Out, Lse, CuSeqlens, Slopes,
        qk_scale,  # softmax_scale * LOG2E
        stride_qt, stride_qh, stride_kt, stride_kh, stride_vt, stride_vh, stride_ot, stride_oh,
        stride_lh,
        HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, HAS_ALIBI: tl.constexpr,
        IS_FP32: tl.constexpr, INPUT_PRECISION: tl.constexpr,
        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    ):
        start_m, seq, head = tl.program_id(0), tl.program_id(1), tl.program_id(2)
        seq_start = tl.load(CuSeqlens + seq)
        seqlen = tl.load(CuSeqlens + seq + 1) - seq_start
        if start_m * BLOCK_M >= seqlen:  # this sequence is shorter than the longest one
            return
        rows = start_m * BLOCK_M + tl.arange(0, BLOCK_M)  # (BLOCK_M,) positions within the sequence
        offs_n = tl.arange(0, BLOCK_N)
        offs_d = tl.arange(0, BLOCK_D)
        row_ok = rows < seqlen
        d_ok = offs_d < HEAD_DIM

        q_mask = row_ok[:, None] & d_ok[None, :]
        q = tl.load(_tile(Q, seq_start, rows, stride_qt, head, stride_qh, offs_d), mask=q_mask, other=0.0)  # (BLOCK_M, BLOCK_D)
        slope_log2 = _slope_log2(Slopes, head, HAS_ALIBI)

        m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)  # running row max (log2 units)
        l_i = tl.zeros([BLOCK_M], dtype=tl.float32)  # running row sum of exp2(s - m_i)
        acc = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)

        for start_n in range(0, seqlen, BLOCK_N):
            cols = start_n + offs_n  # (BLOCK_N,)
            col_ok = cols < seqlen
            kv_mask = col_ok[:, None] & d_ok[None, :]
            k = tl.load(_tile(K, seq_start, cols, stride_kt, head, stride_kh, offs_d), mask=kv_mask, other=0.0)
            s = tl.dot(q, tl.trans(k), input_precision=INPUT_PRECISION) * qk_scale  # (BLOCK_M, BLOCK_N)
            s = _alibi_scores(s, rows, cols, slope_log2, seqlen, HAS_ALIBI)

            m_new = tl.maximum(m_i, tl.max(s, 1))
            p = tl.exp2(s - m_new[:, None])
            alpha = tl.exp2(m_i - m_new)  # rescales what was accumulated under the old max
            l_i = l_i * alpha + tl.sum(p, 1)
            v = tl.load(_tile(V, seq_start, cols, stride_vt, head, stride_vh, offs_d), mask=kv_mask, other=0.0)
            acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision=INPUT_PRECISION)
            m_i = m_new

        acc = acc / l_i[:, None]
        out_ptrs = _tile(Out, seq_start, rows, stride_ot, head, stride_oh, offs_d)
        tl.store(out_ptrs, acc.to(Out.dtype.element_ty), mask=q_mask)
        tl.store(Lse + head * stride_lh + seq_start + rows, m_i + tl.log2(l_i), mask=row_ok)

    @triton.jit
    def _bwd_preprocess_kernel(
        Out, DOut, Delta, stride_ot, stride_oh, stride_dot, stride_doh, stride_dh, total_tokens,
        HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_T: tl.constexpr,
    ):
        """Delta[h, t] = sum_d dO[t, h, d] * O[t, h, d]."""
        tokens = tl.program_id(0) * BLOCK_T + tl.arange(0, BLOCK_T)
        head = tl.program_id(1)
        offs_d = tl.arange(0, BLOCK_D)
        mask = (tokens < total_tokens)[:, None] & (offs_d < HEAD_DIM)[None, :]
        o = tl.load(Out + tokens[:, None] * stride_ot + head * stride_oh + offs_d[None, :], mask=mask, other=0.0)
        do = tl.load(DOut + tokens[:, None] * stride_dot + head * stride_doh + offs_d[None, :], mask=mask, other=0.0)
        delta = tl.sum(o.to(tl.float32) * do.to(tl.float32), 1)
        tl.store(Delta + head * stride_dh + tokens, delta, mask=tokens < total_tokens)

    @triton.autotune(configs=_configs("bwd_dkdv"), key=_AUTOTUNE_KEY, prune_configs_by={"early_config_prune": _head_dim_pruner("bwd_dkdv")})
    @triton.jit
    def _bwd_dkdv_kernel(
        Q, K, V, DOut, Lse, Delta, DK, DV, CuSeqlens, Slopes,
        softmax_scale, qk_scale,
        stride_qt, stride_qh, stride_kt, stride_kh, stride_vt, stride_vh, stride_dot, stride_doh,
        stride_dkt, stride_dkh, stride_dvt, stride_dvh, stride_lh,
        HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, HAS_ALIBI: tl.constexpr,
        IS_FP32: tl.constexpr, INPUT_PRECISION: tl.constexpr,
        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    ):
        """One block of keys: dV = P^T dO and dK = dS^T Q * scale, summed over every query block."""
        start_n, seq, head = tl.program_id(0), tl.program_id(1), tl.program_id(2)
        seq_start = tl.load(CuSeqlens + seq)
        seqlen = tl.load(CuSeqlens + seq + 1) - seq_start
        if start_n * BLOCK_N >= seqlen:
            return
        cols = start_n * BLOCK_N + tl.arange(0, BLOCK_N)  # (BLOCK_N,) key positions
        offs_m = tl.arange(0, BLOCK_M)
        offs_d = tl.arange(0, BLOCK_D)
        col_ok = cols < seqlen
        d_ok = offs_d < HEAD_DIM
        kv_mask = col_ok[:, None] & d_ok[None, :]
        k = tl.load(_tile(K, seq_start, cols, stride_kt, head, stride_kh, offs_d), mask=kv_mask, other=0.0)
        v = tl.load(_tile(V, seq_start, cols, stride_vt, head, stride_vh, offs_d), mask=kv_mask, other=0.0)
        slope_log2 = _slope_log2(Slopes, head, HAS_ALIBI)

        dk = tl.zeros([BLOCK_N, BLOCK_D], dtype=tl.float32)
        dv = tl.zeros([BLOCK_N, BLOCK_D], dtype=tl.float32)
        for start_m in range(0, seqlen, BLOCK_M):
            rows = start_m + offs_m  # (BLOCK_M,) query positions
            row_ok = rows < seqlen
            q_mask = row_ok[:, None] & d_ok[None, :]
            q = tl.load(_tile(Q, seq_start, rows, stride_qt, head, stride_qh, offs_d), mask=q_mask, other=0.0)
            do = tl.load(_tile(DOut, seq_start, rows, stride_dot, head, stride_doh, offs_d), mask=q_mask, other=0.0)
            lse = tl.load(Lse + head * stride_lh + seq_start + rows, mask=row_ok, other=float("inf"))
            delta = tl.load(Delta + head * stride_lh + seq_start + rows, mask=row_ok, other=0.0)

            p = _bwd_probs(q, k, lse, rows, cols, slope_log2, seqlen, qk_scale, HAS_ALIBI, INPUT_PRECISION)
            dv += tl.dot(tl.trans(p.to(do.dtype)), do, input_precision=INPUT_PRECISION)
            dp = tl.dot(do, tl.trans(v), input_precision=INPUT_PRECISION)  # (BLOCK_M, BLOCK_N)
            ds = p * (dp - delta[:, None])
            dk += tl.dot(tl.trans(ds.to(q.dtype)), q, input_precision=INPUT_PRECISION)

        dk *= softmax_scale
        tl.store(_tile(DK, seq_start, cols, stride_dkt, head, stride_dkh, offs_d), dk.to(DK.dtype.element_ty), mask=kv_mask)
        tl.store(_tile(DV, seq_start, cols, stride_dvt, head, stride_dvh, offs_d), dv.to(DV.dtype.element_ty), mask=kv_mask)

    @triton.autotune(configs=_configs("bwd_dq"), key=_AUTOTUNE_KEY, prune_configs_by={"early_config_prune": _head_dim_pruner("bwd_dq")})
    @triton.jit
    def _bwd_dq_kernel(
        Q, K, V, DOut, Lse, Delta, DQ, CuSeqlens, Slopes,
        softmax_scale, qk_scale,
        stride_qt, stride_qh, stride_kt, stride_kh, stride_vt, stride_vh, stride_dot, stride_doh,
        stride_dqt, stride_dqh, stride_lh,
        HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, HAS_ALIBI: tl.constexpr,
        IS_FP32: tl.constexpr, INPUT_PRECISION: tl.constexpr,
        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    ):
        """One block of queries: dQ = dS K * scale, summed over every key block."""
        start_m, seq, head = tl.program_id(0), tl.program_id(1), tl.program_id(2)
        seq_start = tl.load(CuSeqlens + seq)
        seqlen = tl.load(CuSeqlens + seq + 1) - seq_start
        if start_m * BLOCK_M >= seqlen:
            return
        rows = start_m * BLOCK_M + tl.arange(0, BLOCK_M)
        offs_n = tl.arange(0, BLOCK_N)
        offs_d = tl.arange(0, BLOCK_D)
        row_ok = rows < seqlen
        d_ok = offs_d < HEAD_DIM
        q_mask = row_ok[:, None] & d_ok[None, :]
        q = tl.load(_tile(Q, seq_start, rows, stride_qt, head, stride_qh, offs_d), mask=q_mask, other=0.0)
        do = tl.load(_tile(DOut, seq_start, rows, stride_dot, head, stride_doh, offs_d), mask=q_mask, other=0.0)
        lse = tl.load(Lse + head * stride_lh + seq_start + rows, mask=row_ok, other=float("inf"))
        delta = tl.load(Delta + head * stride_lh + seq_start + rows, mask=row_ok, other=0.0)
        slope_log2 = _slope_log2(Slopes, head, HAS_ALIBI)

        dq = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)
        for start_n in range(0, seqlen, BLOCK_N):
            cols = start_n + offs_n
            kv_mask = (cols < seqlen)[:, None] & d_ok[None, :]
            k = tl.load(_tile(K, seq_start, cols, stride_kt, head, stride_kh, offs_d), mask=kv_mask, other=0.0)
            v = tl.load(_tile(V, seq_start, cols, stride_vt, head, stride_vh, offs_d), mask=kv_mask, other=0.0)
            p = _bwd_probs(q, k, lse, rows, cols, slope_log2, seqlen, qk_scale, HAS_ALIBI, INPUT_PRECISION)
            dp = tl.dot(do, tl.trans(v), input_precision=INPUT_PRECISION)
            ds = p * (dp - delta[:, None])
            dq += tl.dot(ds.to(k.dtype), k, input_precision=INPUT_PRECISION)

        dq *= softmax_scale
        tl.store(_tile(DQ, seq_start, rows, stride_dqt, head, stride_dqh, offs_d), dq.to(DQ.dtype.element_ty), mask=q_mask)


KERNEL_NAMES = ("fwd", "bwd_dkdv", "bwd_dq")


def _tuners() -> dict:
    return {"fwd": _fwd_kernel, "bwd_dkdv": _bwd_dkdv_kernel, "bwd_dq": _bwd_dq_kernel}


def autotune_configs(kernel: str, meta: dict) -> list:
    """The triton.Config list the autotuner of `kernel` (one of KERNEL_NAMES) tries for the constexprs
    `meta` (see kernel_meta), after its pruning; under TRITON_INTERPRET=1, the one interpreter config."""
    if kernel not in KERNEL_NAMES:
        raise ValueError(f"kernel must be one of {KERNEL_NAMES}, got {kernel!r}")
    tuner = _tuners()[kernel]
    return tuner.early_config_prune(tuner.configs, None, **meta) if tuner.early_config_prune else list(tuner.configs)


@contextlib.contextmanager
def pinned_config(config, kernels: tuple = KERNEL_NAMES):
    """Within the block, `kernels` run at this one triton.Config instead of autotuning: tests run the
    interpreter at GPU block sizes, bench/gpu_check.py checks each autotune config for correctness.
    Not thread-safe (it swaps the autotuners' config lists)."""
    if not TRITON_AVAILABLE:
        raise ImportError("pinned_config needs the `triton` package, which is not importable here.")
    unknown = set(kernels) - set(KERNEL_NAMES)
    if unknown:
        raise ValueError(f"kernels must be among {KERNEL_NAMES}, got {sorted(unknown)}")
    tuners = [_tuners()[k] for k in kernels]
    saved = [t.configs for t in tuners]
    try:
        for t in tuners:
            t.configs = [config]  # one config: the autotuner launches it without pruning or benchmarking
        yield config
    finally:
        for t, configs in zip(tuners, saved):
            t.configs = configs


def _check_inputs(q, k, v, cu_seqlens, alibi_slopes):
    if not TRITON_AVAILABLE:
        raise ImportError("flash_attn_varlen_func needs the `triton` package, which is not importable here.")
    if q.dim() != 3 or q.shape != k.shape or q.shape != v.shape:
        raise ValueError(
            f"q, k, v must all be (total_tokens, heads, head_dim); got {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}"
        )
    if not (q.dtype == k.dtype == v.dtype) or q.dtype not in (torch.float16, torch.bfloat16, torch.float32):
        raise TypeError(f"q, k, v must share one dtype of fp16, bf16 or fp32; got {q.dtype}, {k.dtype}, {v.dtype}")
    head_dim = q.shape[-1]
    if head_dim % 8 != 0 or head_dim > MAX_HEAD_DIM:
        raise ValueError(f"head_dim must be a multiple of 8 and at most {MAX_HEAD_DIM}; got {head_dim}")
    for name, t in (("q", q), ("k", k), ("v", v)):
        if t.stride(-1) != 1:
            raise ValueError(f"{name} must be contiguous in its last (head_dim) dimension")
    if cu_seqlens.dtype != torch.int32 or cu_seqlens.dim() != 1:
        raise TypeError(f"cu_seqlens must be a 1-D int32 tensor, got {cu_seqlens.dtype} of shape {tuple(cu_seqlens.shape)}")
    if alibi_slopes is not None and (alibi_slopes.shape != (q.shape[1],) or alibi_slopes.dtype != torch.float32):
        raise ValueError(
            f"alibi_slopes must be float32 of shape ({q.shape[1]},); got {alibi_slopes.dtype} {tuple(alibi_slopes.shape)}"
        )


def kernel_meta(head_dim: int, is_fp32: bool, has_alibi: bool, fp32_precision: str = "ieee") -> dict:
    """The constexpr arguments of the three autotuned kernels (bench/triton_aot.py compiles with these)."""
    return dict(
        HEAD_DIM=head_dim,
        BLOCK_D=max(16, triton.next_power_of_2(head_dim)),
        HAS_ALIBI=has_alibi,
        IS_FP32=is_fp32,
        INPUT_PRECISION=fp32_precision if is_fp32 else "tf32",  # ignored by the hardware for fp16/bf16
    )


def _meta(q, alibi_slopes, fp32_precision):
    return kernel_meta(q.shape[-1], q.dtype == torch.float32, alibi_slopes is not None, fp32_precision)


def flash_attn_forward(q, k, v, cu_seqlens, max_seqlen, alibi_slopes, softmax_scale, fp32_precision="ieee", out=None, lse=None):
    """Forward kernel launch. Returns (out (total, heads, head_dim), lse (heads, total) fp32, log2 units).

    `out` / `lse` may be passed preallocated (tests poison them to prove every element is written).
    """
    total, heads, _ = q.shape
    out = torch.empty_like(q, memory_format=torch.contiguous_format) if out is None else out
    lse = torch.empty((heads, total), dtype=torch.float32, device=q.device) if lse is None else lse
    slopes = alibi_slopes if alibi_slopes is not None else torch.zeros(heads, dtype=torch.float32, device=q.device)
    batch = cu_seqlens.numel() - 1
    grid = lambda meta: (triton.cdiv(max_seqlen, meta["BLOCK_M"]), batch, heads)  # noqa: E731
    _fwd_kernel[grid](
        q, k, v, out, lse, cu_seqlens, slopes, softmax_scale * LOG2E,
        q.stride(0), q.stride(1), k.stride(0), k.stride(1), v.stride(0), v.stride(1), out.stride(0), out.stride(1),
        lse.stride(0),
        **_meta(q, alibi_slopes, fp32_precision),
    )
    return out, lse


def flash_attn_backward(do, q, k, v, out, lse, cu_seqlens, max_seqlen, alibi_slopes, softmax_scale, fp32_precision="ieee", dq=None, dk=None, dv=None):
    """Backward kernel launches. Returns (dq, dk, dv), each (total, heads, head_dim)."""
    total, heads, head_dim = q.shape
    do = do if do.stride(-1) == 1 else do.contiguous()
    dq = torch.empty_like(q, memory_format=torch.contiguous_format) if dq is None else dq
    dk = torch.empty_like(k, memory_format=torch.contiguous_format) if dk is None else dk
    dv = torch.empty_like(v, memory_format=torch.contiguous_format) if dv is None else dv
    slopes = alibi_slopes if alibi_slopes is not None else torch.zeros(heads, dtype=torch.float32, device=q.device)
    meta = _meta(q, alibi_slopes, fp32_precision)
    batch = cu_seqlens.numel() - 1

    delta = torch.empty_like(lse)  # (heads, total)
    block_t = 64
    _bwd_preprocess_kernel[(triton.cdiv(total, block_t), heads)](
        out, do, delta, out.stride(0), out.stride(1), do.stride(0), do.stride(1), delta.stride(0), total,
        HEAD_DIM=head_dim, BLOCK_D=meta["BLOCK_D"], BLOCK_T=block_t,
    )
    strides_qkvdo = (q.stride(0), q.stride(1), k.stride(0), k.stride(1), v.stride(0), v.stride(1), do.stride(0), do.stride(1))
    _bwd_dkdv_kernel[lambda m: (triton.cdiv(max_seqlen, m["BLOCK_N"]), batch, heads)](
        q, k, v, do, lse, delta, dk, dv, cu_seqlens, slopes, softmax_scale, softmax_scale * LOG2E,
        *strides_qkvdo, dk.stride(0), dk.stride(1), dv.stride(0), dv.stride(1), lse.stride(0),
        **meta,
    )
    _bwd_dq_kernel[lambda m: (triton.cdiv(max_seqlen, m["BLOCK_M"]), batch, heads)](
        q, k, v, do, lse, delta, dq, cu_seqlens, slopes, softmax_scale, softmax_scale * LOG2E,
        *strides_qkvdo, dq.stride(0), dq.stride(1), lse.stride(0),
        **meta,
    )
    return dq, dk, dv


class _FlashAttnVarlen(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, cu_seqlens, max_seqlen, alibi_slopes, softmax_scale, fp32_precision):
        out, lse = flash_attn_forward(q, k, v, cu_seqlens, max_seqlen, alibi_slopes, softmax_scale, fp32_precision)
        ctx.save_for_backward(q, k, v, out, lse, cu_seqlens, alibi_slopes)
        ctx.max_seqlen, ctx.softmax_scale, ctx.fp32_precision = max_seqlen, softmax_scale, fp32_precision
        return out

    @staticmethod
    def backward(ctx, do):
        q, k, v, out, lse, cu_seqlens, alibi_slopes = ctx.saved_tensors
        dq, dk, dv = flash_attn_backward(
            do, q, k, v, out, lse, cu_seqlens, ctx.max_seqlen, alibi_slopes, ctx.softmax_scale, ctx.fp32_precision
        )
        return dq, dk, dv, None, None, None, None, None


def flash_attn_varlen_func(q, k, v, cu_seqlens, max_seqlen, alibi_slopes=None, softmax_scale=None, fp32_precision="ieee"):
    """Attention over a packed batch of variable-length sequences; no attention across sequences.

    q, k, v: (total_tokens, heads, head_dim), fp16 / bf16 / fp32, head_dim a multiple of 8 <= 128.
    cu_seqlens: (batch + 1,) int32, cu_seqlens[b]:cu_seqlens[b+1] are the rows of sequence b.
    max_seqlen: int, the longest sequence. alibi_slopes: (heads,) float32 or None.
    softmax_scale: defaults to head_dim ** -0.5. fp32_precision: "ieee" (default) or "tf32",
    used only for fp32 inputs. Returns (total_tokens, heads, head_dim) in the input dtype.
    """
    _check_inputs(q, k, v, cu_seqlens, alibi_slopes)
    if fp32_precision not in ("ieee", "tf32"):
        raise ValueError(f"fp32_precision must be 'ieee' or 'tf32', got {fp32_precision!r}")
    if softmax_scale is None:
        softmax_scale = 1.0 / math.sqrt(q.shape[-1])
    return _FlashAttnVarlen.apply(q, k, v, cu_seqlens, int(max_seqlen), alibi_slopes, float(softmax_scale), fp32_precision)
