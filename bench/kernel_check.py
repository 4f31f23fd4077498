"""Correctness of the Triton attention kernel against a float64 reference, on any device.

Lives here: packed random inputs, the float64 reference (per-sequence attention with an explicit
ALiBi bias, and its gradients by autograd), the error measure and tolerances, and `check_case`,
which runs flash_attn_varlen_func forward + backward once and returns its errors. Used by
tests/test_flash_attn_triton.py (Triton interpreter), tests/test_cuda.py and bench/gpu_check.py
(CUDA). Not here: the kernel (flash_attn_triton.py) or any timing.

Error = max |kernel - reference| / max |reference| per output (out, dq, dk, dv).
"""

from dataclasses import dataclass

import torch

from dnabert2.bert_attention import alibi_slopes

# Largest allowed error relative to the largest reference value, per input dtype and fp32 matmul
# precision. fp32 IEEE: accumulation-order noise only. tf32 has a 10-bit mantissa like fp16;
# bf16 has 7 bits (unit roundoff 2^-8 = 3.9e-3), and P and dS are rounded to bf16 before the
# second matmul of each pair.
TOLERANCE = {
    ("float32", "ieee"): 1e-5,
    ("float32", "tf32"): 2e-3,
    ("float16", "ieee"): 2e-3,
    ("bfloat16", "ieee"): 1.6e-2,
}


@dataclass(frozen=True)
class Case:
    heads: int
    head_dim: int
    lengths: tuple[int, ...]

    @property
    def name(self) -> str:
        return f"h{self.heads}-d{self.head_dim}-L{'+'.join(map(str, self.lengths))}"


def packed_inputs(case: Case, dtype: torch.dtype, device: str = "cpu", seed: int = 0):
    """q, k, v, dout (total, heads, head_dim) in dtype; cu_seqlens int32; ALiBi slopes float32."""
    g = torch.Generator().manual_seed(seed)
    total = sum(case.lengths)
    q, k, v, dout = (torch.randn(total, case.heads, case.head_dim, generator=g).to(device, dtype) for _ in range(4))
    cu_seqlens = torch.tensor([0, *torch.tensor(case.lengths).cumsum(0).tolist()], dtype=torch.int32, device=device)
    slopes = torch.tensor(alibi_slopes(case.heads), dtype=torch.float32, device=device)
    return q, k, v, dout, cu_seqlens, slopes


def reference(q, k, v, dout, cu_seqlens, slopes, scale):
    """float64 attention per sequence with an explicit bias; returns out, dq, dk, dv (float64)."""
    q, k, v, dout = (t.double().requires_grad_(t is not dout) for t in (q, k, v, dout))
    outs = []
    for start, end in zip(cu_seqlens[:-1].tolist(), cu_seqlens[1:].tolist()):
        pos = torch.arange(end - start, dtype=torch.float64, device=q.device)
        bias = -slopes.double()[:, None, None] * (pos[:, None] - pos[None, :]).abs()  # (heads, n, n)
        scores = torch.einsum("ihd,jhd->hij", q[start:end], k[start:end]) * scale + bias
        outs.append(torch.einsum("hij,jhd->ihd", scores.softmax(-1), v[start:end]))
    out = torch.cat(outs)
    dq, dk, dv = torch.autograd.grad(out, (q, k, v), dout)
    return out.detach(), dq, dk, dv


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return ((actual.double() - expected).abs().max() / expected.abs().max()).item()


def tolerance(dtype: torch.dtype, fp32_precision: str = "ieee") -> float:
    name = str(dtype).removeprefix("torch.")
    return TOLERANCE[name, fp32_precision if name == "float32" else "ieee"]


def check_case(case: Case, dtype: torch.dtype, device: str = "cpu", fp32_precision: str = "ieee", alibi: bool = True) -> dict:
    """Run the kernel forward + backward on one case; {"out"|"dq"|"dk"|"dv": relative error, "tolerance": t}."""
    from dnabert2.flash_attn_triton import flash_attn_varlen_func

    q, k, v, dout, cu_seqlens, slopes = packed_inputs(case, dtype, device)
    slopes = slopes if alibi else torch.zeros_like(slopes)
    scale = case.head_dim**-0.5
    q.requires_grad_(), k.requires_grad_(), v.requires_grad_()
    out = flash_attn_varlen_func(q, k, v, cu_seqlens, max(case.lengths), slopes if alibi else None, scale, fp32_precision)
    out.backward(dout)
    if out.dtype != dtype or q.grad.dtype != dtype:
        raise AssertionError(f"kernel returned {out.dtype} / grad {q.grad.dtype} for {dtype} inputs")
    expected = reference(q.detach(), k.detach(), v.detach(), dout, cu_seqlens, slopes, scale)
    errors = {name: relative_error(a, e) for name, a, e in zip(("out", "dq", "dk", "dv"), (out, q.grad, k.grad, v.grad), expected)}
    return {**errors, "tolerance": tolerance(dtype, fp32_precision)}


def failures(errors: dict) -> list[str]:
    """The outputs of a check_case result whose error exceeds its tolerance."""
    return [f"{n}: error {errors[n]:.3g} > {errors['tolerance']:.3g}" for n in ("out", "dq", "dk", "dv") if errors[n] > errors["tolerance"]]
