"""Every GPU autotune config of the Triton attention kernels compiles ahead of time for A100 (sm_80)
and H100 (sm_90), in fp16 and bf16, at head_dim 64 and 128, without register spills, within the
target's shared memory, and on sm_90 with wgmma (bench/triton_aot.py; no GPU needed).

The compile runs once per module in a subprocess without TRITON_INTERPRET: tests/conftest.py sets
TRITON_INTERPRET=1 for the whole session, and Triton reads it when `triton.jit` decorates the
kernels, so in this process they are interpreter functions that cannot be compiled. The expected
config set is computed here from flash_attn_triton.GPU_CONFIGS, independently of the script."""

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("triton")

from helpers import REPO_ROOT  # noqa: E402
from triton_aot import SMEM_LIMIT, Job, results_from_json, violations  # noqa: E402  (bench/, on pytest's pythonpath)

from dnabert2.flash_attn_triton import GPU_CONFIGS, KERNEL_NAMES  # noqa: E402

SCRIPT = REPO_ROOT / "bench" / "triton_aot.py"
SMS, DTYPES, HEAD_DIMS = (80, 90), ("float16", "bfloat16"), (64, 128)


def run_aot(out_dir, *args: str) -> tuple[int, list]:
    out = out_dir / "aot.json"
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    proc = subprocess.run([sys.executable, str(SCRIPT), "--json", str(out), *args], env=env, capture_output=True,
                          text=True, timeout=1200)
    assert out.exists(), proc.stderr[-3000:]
    return proc.returncode, results_from_json(json.loads(out.read_text())["results"])


@pytest.fixture(scope="module")
def aot(tmp_path_factory):
    """(exit code, results) of the default run: every autotune config, plus one fp32 config per kernel."""
    return run_aot(tmp_path_factory.mktemp("aot"), "--workers", "2")


def expected_jobs() -> set[Job]:
    jobs = {
        Job(kernel, dtype, head_dim, m, n, w, s, sm)
        for sm in SMS for dtype in DTYPES for head_dim in HEAD_DIMS for kernel in KERNEL_NAMES
        for m, n, w, s, largest_block_d in GPU_CONFIGS[kernel] if head_dim <= largest_block_d
    }
    for kernel in KERNEL_NAMES:  # fp32: the first config of each kernel, IEEE, head_dim 64, sm_90
        m, n, w, s, _ = GPU_CONFIGS[kernel][0]
        jobs.add(Job(kernel, "float32", 64, m, n, w, s, 90, "ieee"))
    return jobs


def test_every_autotune_config_is_compiled_for_sm80_and_sm90(aot):
    code, results = aot
    assert {r.job for r in results} == expected_jobs()
    assert len(results) == len(expected_jobs())
    assert not [r.error for r in results if r.error]


def test_fp16_and_bf16_configs_do_not_spill_registers(aot):
    _, results = aot
    spilling = [(r.job, r.spill_stores, r.local) for r in results if r.job.dtype != "float32" and (r.spill_stores or r.local)]
    assert not spilling


def test_every_config_fits_its_targets_shared_memory(aot):
    _, results = aot
    assert all(r.shared > 0 for r in results)  # the pipelined tiles do live in shared memory
    assert not [(r.job, r.shared) for r in results if r.shared > SMEM_LIMIT[r.job.sm]]


def test_on_sm90_fp16_and_bf16_use_wgmma_and_fp32_does_not(aot):
    _, results = aot
    assert all(r.wgmma for r in results if r.job.sm == 90 and r.job.dtype != "float32")
    assert not any(r.wgmma for r in results if r.job.sm == 80)  # Hopper-only instruction
    assert not any(r.wgmma for r in results if r.job.dtype == "float32")  # IEEE fp32: FMA, no tensor cores


def test_the_run_passes_as_a_whole(aot):
    code, results = aot
    fp32 = [r for r in results if r.job.dtype == "float32"]
    assert len(fp32) == len(KERNEL_NAMES)
    assert code == 0, [(r.job, violations(r)) for r in results if violations(r)]


def test_head_dim_128_lists_no_config_over_the_limits():
    fwd_128 = {c[:4] for c in GPU_CONFIGS["fwd"] if c[4] >= 128}
    assert (128, 128, 8, 4) not in fwd_128 and (128, 128, 8, 3) not in fwd_128
    assert {c[:4] for c in GPU_CONFIGS["fwd"]} >= {(128, 128, 8, 4)}  # still tried at head_dim 64


def test_a_pruned_config_is_reported_over_the_limits(tmp_path):
    """The forward at 128 x 128, 4 stages, head_dim 128 (pruned from the list): over both targets'
    shared memory (288 KB); with 4 warps it also spills. The script exits 1 and names each."""
    jobs = "fwd,bfloat16,128,128,128,8,4,90;fwd,bfloat16,128,128,128,4,3,80"
    code, results = run_aot(tmp_path, "--jobs", jobs, "--workers", "2")
    assert code == 1
    over_smem, spills = (violations(r) for r in results)
    assert results[0].shared > SMEM_LIMIT[90] and any("shared memory" in v for v in over_smem)
    assert results[1].spill_stores > 0 and any("register spills" in v for v in spills)
    assert results[1].local == 0  # spills live in the stack frame: LOCAL alone would not show them
