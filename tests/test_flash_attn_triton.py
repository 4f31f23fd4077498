"""The Triton FlashAttention-2 kernel (run by Triton's CPU interpreter, TRITON_INTERPRET=1) against a
float64 eager reference with an explicit ALiBi bias, one sequence at a time (bench/kernel_check.py)."""

import pytest
import torch

triton = pytest.importorskip("triton")

from kernel_check import Case, check_case, failures  # noqa: E402  (bench/, on pytest's pythonpath)
from kernel_check import packed_inputs as _packed_inputs  # noqa: E402

from dnabert2.flash_attn_triton import (  # noqa: E402
    flash_attn_backward,
    flash_attn_forward,
    flash_attn_varlen_func,
    pinned_config,
)

# (heads, head_dim, sequence lengths): lengths 1..300, heads 1 / 4 / 12 (12: the original's
# non-power-of-2 slopes), head_dim 16 / 32 / 64 / 80; none of these lengths is a block multiple
# except where noted, so edge tiles are always exercised.
CASES = [
    (1, 16, [1, 17, 300]),
    (4, 32, [5, 64, 129, 33]),  # 64: an exact multiple of the block size
    (12, 64, [1, 2, 100]),
    (4, 80, [150, 7]),
]


def packed_inputs(heads, head_dim, lengths, dtype, seed=0):
    return _packed_inputs(Case(heads, head_dim, tuple(lengths)), dtype, seed=seed)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
@pytest.mark.parametrize("heads,head_dim,lengths", CASES, ids=[f"h{c[0]}-d{c[1]}" for c in CASES])
def test_forward_and_gradients_match_float64_reference(heads, head_dim, lengths, dtype):
    errors = check_case(Case(heads, head_dim, tuple(lengths)), dtype)
    assert not failures(errors), errors


# The GPU autotune lists' block shapes, run here in the interpreter (the default interpreter config
# is 16 x 16). Lengths: 1, one past a 64 block, one short of two 128 blocks, and 300 (several
# partial tiles); head_dim 64 (the model's) and 128 (the largest allowed).
GPU_BLOCK_CASES = [Case(2, 64, (1, 65, 300)), Case(1, 128, (255, 40))]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
@pytest.mark.parametrize("block_m,block_n", [(64, 64), (128, 64)], ids=["64x64", "128x64"])
@pytest.mark.parametrize("case", GPU_BLOCK_CASES, ids=lambda c: c.name)
def test_gpu_block_sizes_match_float64_reference(block_m, block_n, case, dtype):
    with pinned_config(triton.Config({"BLOCK_M": block_m, "BLOCK_N": block_n}, num_warps=4, num_stages=2)):
        errors = check_case(case, dtype)
    assert not failures(errors), errors


def test_pinned_config_is_restored_afterwards():
    from dnabert2 import flash_attn_triton as fa

    before = [list(t.configs) for t in (fa._fwd_kernel, fa._bwd_dkdv_kernel, fa._bwd_dq_kernel)]
    with pinned_config(triton.Config({"BLOCK_M": 64, "BLOCK_N": 32}), kernels=("bwd_dq",)):
        assert [c.kwargs for c in fa._bwd_dq_kernel.configs] == [{"BLOCK_M": 64, "BLOCK_N": 32}]
        assert fa._fwd_kernel.configs == before[0]
    assert [t.configs for t in (fa._fwd_kernel, fa._bwd_dkdv_kernel, fa._bwd_dq_kernel)] == before


def test_without_alibi_it_is_plain_attention():
    errors = check_case(Case(2, 16, (40, 3)), torch.float32, alibi=False)
    assert not failures(errors), errors


def test_strided_views_of_a_fused_qkv_are_read_in_place():
    q, k, v, dout, cu_seqlens, slopes = packed_inputs(4, 32, [50, 9], torch.float32)
    qkv = torch.stack([q, k, v], dim=1)  # (total, 3, heads, head_dim): q, k, v are non-contiguous views
    out = flash_attn_varlen_func(*qkv.unbind(1), cu_seqlens, 50, slopes)
    assert torch.equal(out, flash_attn_varlen_func(q, k, v, cu_seqlens, 50, slopes))


def test_every_output_element_is_written():
    q, k, v, dout, cu_seqlens, slopes = packed_inputs(4, 32, [1, 37, 80], torch.float32)
    scale = 32**-0.5
    poison = lambda t: torch.full_like(t, float("nan"))  # noqa: E731
    out, lse = flash_attn_forward(q, k, v, cu_seqlens, 80, slopes, scale, out=poison(q), lse=torch.full((4, 118), float("nan")))
    assert not out.isnan().any() and not lse.isnan().any()
    grads = flash_attn_backward(dout, q, k, v, out, lse, cu_seqlens, 80, slopes, scale, dq=poison(q), dk=poison(k), dv=poison(v))
    for g in grads:
        assert not g.isnan().any()


@pytest.mark.parametrize(
    "change,error",
    [
        (lambda a: {**a, "q": a["q"][..., :12]}, "total_tokens, heads, head_dim"),
        (lambda a: {**a, "q": a["q"].double(), "k": a["k"].double(), "v": a["v"].double()}, "dtype"),
        (lambda a: {**a, "cu_seqlens": a["cu_seqlens"].long()}, "int32"),
        (lambda a: {**a, "alibi_slopes": a["alibi_slopes"][:2]}, "alibi_slopes"),
    ],
    ids=["shape", "dtype", "cu_seqlens", "slopes"],
)
def test_bad_arguments_are_refused_clearly(change, error):
    q, k, v, _, cu_seqlens, slopes = packed_inputs(4, 16, [5], torch.float32)
    args = change(dict(q=q, k=k, v=v, cu_seqlens=cu_seqlens, max_seqlen=5, alibi_slopes=slopes))
    with pytest.raises((ValueError, TypeError), match=error):
        flash_attn_varlen_func(**args)


def test_head_dim_not_a_multiple_of_8_is_refused():
    q, k, v, _, cu_seqlens, slopes = packed_inputs(1, 12, [5], torch.float32)
    with pytest.raises(ValueError, match="multiple of 8"):
        flash_attn_varlen_func(q, k, v, cu_seqlens, 5, slopes)


@pytest.mark.parametrize("name", ["cfg_a", "cfg_b"])
def test_model_with_triton_backend_matches_parity_fixtures(name, no_grad):
    from helpers import Parity

    parity = Parity(name)
    model = parity.model("cls", attn_implementation="triton")
    i = parity.inputs
    # The encoder output of the classifier's own forward pass, captured by a hook: one interpreted
    # forward per fixture checks both the logits and the last hidden state they came from.
    encoded = []
    hook = model.bert.register_forward_hook(lambda module, args, output: encoded.append(output))
    try:
        out = model(i["input_ids"], i["attention_mask"])
    finally:
        hook.remove()
    (bert_output,) = encoded
    assert (out.logits - parity.outputs["cls_logits"]).abs().max() <= 1e-5
    assert (bert_output.last_hidden_state - parity.outputs["last_hidden_state"])[parity.real].abs().max() <= 1e-5


def test_model_gradients_through_triton_match_eager(parity_a):
    i = parity_a.inputs
    grads = {}
    for backend in ("eager", "triton"):
        model = parity_a.model("cls", attn_implementation=backend)
        model(i["input_ids"][:, :40], i["attention_mask"][:, :40], labels=i["cls_labels"]).loss.backward()
        grads[backend] = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    for n, g in grads["eager"].items():
        assert torch.allclose(g, grads["triton"][n], atol=1e-5), n
