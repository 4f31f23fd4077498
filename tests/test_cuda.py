"""The correctness sections of bench/gpu_check.py as tests: on a CUDA device, the Triton kernel vs
the float64 reference (fp32 IEEE and tf32, fp16, bf16; lengths up to 4096; every autotune config)
and model parity with attn_implementation="triton". Skipped without CUDA.

Both run bench/gpu_check.py in a subprocess: tests/conftest.py sets TRITON_INTERPRET=1 for the
session, under which the kernels would only be interpreted. The last test always runs: with CUDA
hidden (CUDA_VISIBLE_DEVICES=""), gpu_check takes its CPU path (interpreter on tiny shapes, one AOT
compile) and must say what it skipped and write both reports."""

import json
import os
import subprocess
import sys

import pytest
import torch

pytest.importorskip("triton")

import gpu_check  # noqa: E402  (bench/, on pytest's pythonpath)
from helpers import REPO_ROOT  # noqa: E402

SCRIPT = REPO_ROOT / "bench" / "gpu_check.py"
cuda_only = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def run_gpu_check(out_dir, *args: str, env_overrides: dict | None = None) -> tuple[int, dict, str]:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env.update(env_overrides or {})
    proc = subprocess.run([sys.executable, str(SCRIPT), "--out_dir", str(out_dir), *args], env=env,
                          capture_output=True, text=True, timeout=900)
    report = out_dir / "report.json"
    assert report.exists(), proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc.returncode, json.loads(report.read_text()), proc.stdout


@pytest.fixture(scope="module")
def cuda_report(tmp_path_factory):
    return run_gpu_check(tmp_path_factory.mktemp("gpu"), "--sections", "kernel,parity")


@cuda_only
def test_kernel_matches_float64_in_every_precision_up_to_4k(cuda_report):
    _, report, _ = cuda_report
    rows = report["sections"]["kernel"]["rows"]
    assert {(r["dtype"], r["fp32_precision"]) for r in rows if r["config"] == "autotuned"} == {
        ("float32", "ieee"), ("float32", "tf32"), ("float16", "ieee"), ("bfloat16", "ieee")}
    assert any("4096" in r["case"] for r in rows)
    assert not [(r["case"], r["dtype"], r["config"], r["failures"]) for r in rows if r["failures"]]


@cuda_only
def test_every_autotune_config_is_correct(cuda_report):
    _, report, _ = cuda_report
    swept = [r["config"] for r in report["sections"]["kernel"]["rows"] if r["config"] != "autotuned"]
    from dnabert2.flash_attn_triton import GPU_CONFIGS

    assert len(swept) == sum(1 for rows in GPU_CONFIGS.values() for row in rows if row[4] >= 64)


@cuda_only
def test_model_with_triton_matches_parity_fixtures_on_cuda(cuda_report):
    code, report, _ = cuda_report
    rows = report["sections"]["parity"]["rows"]
    assert [r["fixture"] for r in rows] == list(gpu_check.PARITY_CONFIGS)
    assert not [r["failures"] for r in rows if r["failures"]]
    assert code == 0


def test_without_cuda_gpu_check_runs_the_cpu_sections_and_says_what_it_skipped(tmp_path):
    aot_job = "bwd_dq,bfloat16,64,64,64,8,2,90"
    code, report, stdout = run_gpu_check(tmp_path, "--aot_jobs", aot_job, env_overrides={"CUDA_VISIBLE_DEVICES": ""})
    sections = report["sections"]
    assert list(sections) == list(gpu_check.SECTIONS)
    assert {s: sections[s]["status"] for s in sections} == {
        "aot": "ran", "kernel": "ran", "parity": "ran", "attention": "skipped", "train": "skipped"}
    assert "attention: SKIPPED (no CUDA device)" in stdout and "train: SKIPPED" in stdout
    (aot,) = sections["aot"]["rows"]
    assert (aot["kernel"], aot["sm"], aot["wgmma"], aot["spill_stores"], aot["failures"]) == ("bwd_dq", 90, True, 0, [])
    kernel = sections["kernel"]["rows"]
    assert {r["dtype"] for r in kernel} == {"float32", "float16"}
    assert all(r["out"] <= r["tolerance"] and r["dq"] <= r["tolerance"] and not r["failures"] for r in kernel)
    assert all(r["cls_logits"] <= gpu_check.PARITY_ATOL for r in sections["parity"]["rows"])
    assert report["meta"]["result"] == "PASS" and code == 0
    md = (tmp_path / "report.md").read_text()
    assert "## attention: skipped" in md and "## kernel: ran" in md
    assert not list(tmp_path.glob("*.tmp-*"))  # atomic writes leave no temporary files


def test_unknown_section_is_refused_with_the_allowed_set():
    with pytest.raises(ValueError, match="aot"):
        gpu_check.parse_sections("aot,speed")
