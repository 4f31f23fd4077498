"""Ahead-of-time compile of the Triton attention kernels for CUDA GPUs, on a machine without one.

    python bench/triton_aot.py [--sms 80,90] [--dtypes float16,bfloat16] [--head_dims 64,128]
                               [--fp32 one|all|none] [--workers 2] [--json out.json] [--markdown out.md]

Lives here: compiling every autotune config of the forward and both backward kernels of
flash_attn_triton.py to PTX and a cubin for an sm_80 / sm_90 target (triton.compile with a
GPUTarget; no driver, no device), reading each kernel's resources (registers, spill stores, stack,
local and dynamic shared memory, wgmma use), the per-target limits, and `violations`, the one
rule set that says which compiled config would fail or spill on the GPU. Not here: running the
kernels (tests/test_flash_attn_triton.py, bench/gpu_check.py).

The kernels must be real `triton.jit` functions, so this module refuses to run under
TRITON_INTERPRET=1 (Triton reads that variable when `triton.jit` decorates a function, at import
of flash_attn_triton); the test suite, which sets it in tests/conftest.py, runs this script in a
subprocess without it. Each compile uses a private, temporary Triton cache, so every number is
measured, never read back from an earlier run.

Resource sources. REG, STACK and LOCAL come from `cuobjdump --dump-resource-usage` of the cubin;
spill stores from `ptxas -v` on the same PTX with the flags Triton uses; SHARED is the dynamic
shared memory Triton requests at launch (`metadata.shared`), the number its launcher compares with
the device's opt-in limit. LOCAL counts only declared local arrays: register spills go to the stack
frame, so "no spills" is checked on the ptxas spill count, not on LOCAL alone.
"""

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from dnabert2.flash_attn_triton import KERNEL_NAMES, TRITON_INTERPRET

# Maximum dynamic shared memory per block with opt-in (cudaFuncAttributeMaxDynamicSharedMemorySize),
# bytes: NVIDIA CUDA C++ Programming Guide, "Compute Capabilities", table "Technical Specifications
# per Compute Capability", row "Maximum amount of shared memory per thread block": 163 KB for 8.0
# (A100), 227 KB for 9.0 (H100). The same numbers are torch.cuda.get_device_properties(d)
# .shared_memory_per_block_optin on those GPUs (166912 and 232448), which Triton's launcher checks.
SMEM_LIMIT = {80: 163 * 1024, 90: 227 * 1024}
DTYPES = {"float16": "fp16", "bfloat16": "bf16", "float32": "fp32"}
# Pointer arguments that are not in the input dtype, by name; all other pointers are q/k/v-like.
_POINTER_TYPES = {"Lse": "*fp32", "Delta": "*fp32", "Slopes": "*fp32", "CuSeqlens": "*i32"}


@dataclass(frozen=True)
class Job:
    """One compile: a kernel at one autotune config, dtype, head_dim and target."""

    kernel: str  # one of flash_attn_triton.KERNEL_NAMES
    dtype: str  # one of DTYPES
    head_dim: int
    block_m: int
    block_n: int
    num_warps: int
    num_stages: int
    sm: int  # one of SMEM_LIMIT
    input_precision: str = "tf32"  # fp32 only: "ieee" or "tf32"; ignored for fp16 / bf16


@dataclass
class Result:
    job: Job
    reg: int
    spill_stores: int  # bytes, from ptxas -v
    stack: int  # bytes, stack frame (spills live here)
    local: int  # bytes, declared local memory
    shared: int  # bytes of dynamic shared memory requested at launch
    wgmma: bool
    compile_s: float
    error: str = ""


def _require_compiled_triton() -> None:
    if TRITON_INTERPRET:  # the kernels were decorated as interpreter functions at import
        raise RuntimeError(
            "bench/triton_aot.py compiles real triton.jit kernels; TRITON_INTERPRET=1 is set in this process. "
            "Run it in a process without TRITON_INTERPRET (tests do so in a subprocess)."
        )


def _kernels() -> dict:
    _require_compiled_triton()
    from dnabert2 import flash_attn_triton as fa

    return fa._tuners()


def meta_for(dtype: str, head_dim: int, input_precision: str = "tf32") -> dict:
    """The constexprs flash_attn_triton passes for a dtype and head_dim (ALiBi on, as in the model)."""
    from dnabert2.flash_attn_triton import kernel_meta

    return kernel_meta(head_dim, DTYPES[dtype] == "fp32", True, input_precision)


def autotune_jobs(kernel: str, dtype: str, head_dim: int, sm: int, input_precision: str = "tf32") -> list[Job]:
    """Every config the kernel's autotuner would try for this dtype and head_dim (after its pruning)."""
    _require_compiled_triton()
    from dnabert2.flash_attn_triton import autotune_configs

    configs = autotune_configs(kernel, meta_for(dtype, head_dim, input_precision))
    return [
        Job(kernel, dtype, head_dim, c.kwargs["BLOCK_M"], c.kwargs["BLOCK_N"], c.num_warps, c.num_stages, sm, input_precision)
        for c in configs
    ]


def all_jobs(sms: list[int], dtypes: list[str], head_dims: list[int], fp32: str = "one") -> list[Job]:
    """fp16 / bf16 (and fp32 with fp32="all"): every autotune config. fp32="one": the first config of
    each kernel, IEEE, at the first head_dim and the last target (fp32 IEEE dots are long FMA chains)."""
    jobs = []
    for sm in sms:
        for dtype in dtypes:
            for head_dim in head_dims:
                for kernel in KERNEL_NAMES:
                    if dtype == "float32" and fp32 == "all":
                        for precision in ("ieee", "tf32"):
                            jobs += autotune_jobs(kernel, dtype, head_dim, sm, precision)
                    elif dtype != "float32":
                        jobs += autotune_jobs(kernel, dtype, head_dim, sm)
    if fp32 == "one" and "float32" not in dtypes:
        for kernel in KERNEL_NAMES:
            jobs.append(autotune_jobs(kernel, "float32", head_dims[0], sms[-1], "ieee")[0])
    return jobs


def _signature(fn, job: Job) -> tuple[dict, dict, dict]:
    """(signature, constexprs, attrs) for triton.compile, specialised as a launch on packed
    (total, heads, head_dim) tensors would be: 16-byte aligned pointers, strides divisible by 16."""
    meta = {**meta_for(job.dtype, job.head_dim, job.input_precision), "BLOCK_M": job.block_m, "BLOCK_N": job.block_n}
    signature, constexprs, attrs = {}, {}, {}
    for i, param in enumerate(fn.params):
        name = param.name
        if param.is_constexpr:
            signature[name], constexprs[name] = "constexpr", meta[name]
        elif name[0].isupper():
            signature[name] = _POINTER_TYPES.get(name, "*" + DTYPES[job.dtype])
            attrs[(i,)] = [["tt.divisibility", 16]]
        elif name.startswith("stride"):
            signature[name] = "i32"
            attrs[(i,)] = [["tt.divisibility", 16]]
        else:
            signature[name] = "fp32"  # softmax_scale, qk_scale
    return signature, constexprs, attrs


def _resource_usage(cubin: bytes, bin_dir: Path) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        out = subprocess.run([str(bin_dir / "cuobjdump"), "--dump-resource-usage", f.name], capture_output=True, text=True, check=True).stdout
    fields = dict(re.findall(r"\b([A-Z]+):(\d+)", out))
    return {"reg": int(fields["REG"]), "stack": int(fields["STACK"]), "local": int(fields["LOCAL"])}


def _spill_stores(ptx: str, sm: int) -> int:
    from triton.backends.nvidia.compiler import get_ptxas, sm_arch_from_capability

    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "k.ptx"
        src.write_text(ptx)
        cmd = [get_ptxas(sm).path, "-lineinfo", "-v", "--regAllocOptLevel=2", f"--gpu-name={sm_arch_from_capability(sm)}",
               str(src), "-o", str(Path(d) / "k.cubin")]
        log = subprocess.run(cmd, capture_output=True, text=True, check=True).stderr
    spills = re.findall(r"(\d+) bytes spill stores", log)
    if not spills:
        raise RuntimeError(f"no 'spill stores' line in ptxas -v output:\n{log}")
    return max(int(s) for s in spills)


def compile_job(job: Job) -> Result:
    """Compile one job and measure it; a compile error is returned in Result.error, not raised."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    fn = _kernels()[job.kernel].fn
    signature, constexprs, attrs = _signature(fn, job)
    start = time.perf_counter()
    try:
        compiled = triton.compile(
            ASTSource(fn, signature, constexprs, attrs),
            target=GPUTarget("cuda", job.sm, 32),
            options=dict(num_warps=job.num_warps, num_stages=job.num_stages),
        )
    except Exception as e:  # noqa: BLE001 -- reported per config, the table goes on
        return Result(job, 0, 0, 0, 0, 0, False, time.perf_counter() - start, f"{type(e).__name__}: {str(e)[:300]}")
    seconds = time.perf_counter() - start
    bin_dir = Path(triton.__file__).parent / "backends" / "nvidia" / "bin"
    usage = _resource_usage(compiled.asm["cubin"], bin_dir)
    return Result(
        job, usage["reg"], _spill_stores(compiled.asm["ptx"], job.sm), usage["stack"], usage["local"],
        compiled.metadata.shared, "wgmma" in compiled.asm["ptx"], seconds,
    )


def _init_worker(cache_dir: str) -> None:
    os.environ["TRITON_CACHE_DIR"] = cache_dir
    os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")  # Triton 3.9's default, stated to silence its warning


def compile_all(jobs: list[Job], workers: int = 2) -> list[Result]:
    """Compile jobs in a process pool, each worker with a fresh temporary Triton cache."""
    _require_compiled_triton()
    with tempfile.TemporaryDirectory(prefix="triton-aot-cache-") as cache:
        if workers <= 1:
            _init_worker(cache)
            return [compile_job(j) for j in jobs]
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=(cache,)) as pool:
            return list(pool.map(compile_job, jobs, chunksize=1))


def violations(result: Result) -> list[str]:
    """Why this compiled config would fail or be slow on its target; empty when it is fine."""
    j = result.job
    if result.error:
        return [f"compile error: {result.error}"]
    found = []
    # fp32 is the accuracy path (IEEE dots on FMA units), not a speed path: its spills are reported
    # in the table but allowed; the IEEE dK/dV kernel spilled kilobytes in every config tried.
    if (result.spill_stores and j.dtype != "float32") or result.local:
        found.append(f"register spills ({result.spill_stores} bytes spill stores, LOCAL {result.local})")
    if result.shared > SMEM_LIMIT[j.sm]:
        found.append(f"shared memory {result.shared} > sm_{j.sm} limit {SMEM_LIMIT[j.sm]}")
    if j.sm >= 90 and j.dtype != "float32" and not result.wgmma:
        found.append("no wgmma in the sm_90 PTX (Hopper tensor-core path not taken)")
    return found


COLUMNS = ("kernel", "dtype", "head_dim", "BLOCK_M x BLOCK_N", "warps", "stages", "sm", "REG", "spill stores", "STACK",
           "LOCAL", "SHARED", "wgmma", "compile s", "ok")


def markdown_table(results: list[Result]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in results:
        j, bad = r.job, violations(r)
        dtype = j.dtype if j.dtype != "float32" else f"float32 ({j.input_precision})"
        lines.append(
            f"| {j.kernel} | {dtype} | {j.head_dim} | {j.block_m} x {j.block_n} | {j.num_warps} | {j.num_stages} | {j.sm} | "
            f"{r.reg} | {r.spill_stores} | {r.stack} | {r.local} | {r.shared} | {'yes' if r.wgmma else 'no'} | "
            f"{r.compile_s:.1f} | {'; '.join(bad) or 'yes'} |"
        )
    return "\n".join(lines)


def write_atomic(path: Path, text: str) -> None:
    """Write text to path atomically (chunked_output.atomic_write), creating its folder."""
    from dnabert2.chunked_output import atomic_write

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write(str(path), lambda tmp: Path(tmp).write_text(text))


def results_json(results: list[Result]) -> list[dict]:
    return [{**asdict(r), "violations": violations(r)} for r in results]


def results_from_json(rows: list[dict]) -> list[Result]:
    """The inverse of results_json (its "violations" are recomputed, not read)."""
    return [Result(Job(**r["job"]), **{k: v for k, v in r.items() if k not in ("job", "violations")}) for r in rows]


@dataclass
class AotArguments:
    sms: str = field(default="80,90", metadata={"help": f"comma-separated compute capabilities, of {sorted(SMEM_LIMIT)}"})
    dtypes: str = field(default="float16,bfloat16", metadata={"help": f"comma-separated, of {list(DTYPES)}"})
    head_dims: str = field(default="64,128", metadata={"help": "comma-separated head dims (multiples of 8, <= 128)"})
    fp32: str = field(default="one", metadata={"help": "fp32 coverage: one (first config per kernel), all, none"})
    workers: int = field(default=2, metadata={"help": "compile processes"})
    jobs: str = field(default="", metadata={"help": "compile these instead of the autotune configs: "
                                             "';'-separated kernel,dtype,head_dim,block_m,block_n,warps,stages,sm[,precision]"})
    json: str = field(default="", metadata={"help": "write the results here as JSON"})
    markdown: str = field(default="", metadata={"help": "write the table here as Markdown"})


def parse_list(text: str, allowed, name: str, convert=str) -> list:
    values = [convert(v) for v in text.split(",") if v.strip()]
    bad = [v for v in values if allowed is not None and v not in allowed]
    if bad or not values:
        raise ValueError(f"--{name}: {bad or text!r} not allowed; expected a comma-separated list of {sorted(allowed)}")
    return values


def parse_job(text: str) -> Job:
    """'fwd,bfloat16,128,128,128,8,4,80[,tf32]' -> Job; errors name the field and the allowed values."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) not in (8, 9):
        raise ValueError(f"--jobs entry {text!r}: expected kernel,dtype,head_dim,block_m,block_n,warps,stages,sm[,precision]")
    kernel, dtype, *numbers = parts[:8]
    if kernel not in KERNEL_NAMES:
        raise ValueError(f"--jobs entry {text!r}: kernel {kernel!r} not in {KERNEL_NAMES}")
    if dtype not in DTYPES:
        raise ValueError(f"--jobs entry {text!r}: dtype {dtype!r} not in {list(DTYPES)}")
    head_dim, block_m, block_n, warps, stages, sm = (int(n) for n in numbers)
    if sm not in SMEM_LIMIT:
        raise ValueError(f"--jobs entry {text!r}: sm {sm} not in {sorted(SMEM_LIMIT)}")
    return Job(kernel, dtype, head_dim, block_m, block_n, warps, stages, sm, *parts[8:])


def run(args: AotArguments) -> list[Result]:
    if args.jobs:
        return compile_all([parse_job(j) for j in args.jobs.split(";") if j.strip()], args.workers)
    if args.fp32 not in ("one", "all", "none"):
        raise ValueError(f"--fp32 must be one of one, all, none; got {args.fp32!r}")
    sms = parse_list(args.sms, SMEM_LIMIT, "sms", int)
    dtypes = parse_list(args.dtypes, DTYPES, "dtypes")
    head_dims = parse_list(args.head_dims, None, "head_dims", int)
    return compile_all(all_jobs(sms, dtypes, head_dims, args.fp32), args.workers)


def main(argv: list[str] | None = None) -> int:
    from transformers import HfArgumentParser

    (args,) = HfArgumentParser(AotArguments).parse_args_into_dataclasses(args=argv)
    start = time.perf_counter()
    results = run(args)
    table = markdown_table(results)
    import triton

    header = (f"Triton {triton.__version__}, ptxas from {Path(triton.__file__).parent / 'backends/nvidia/bin'}; "
              f"{len(results)} compiles in {time.perf_counter() - start:.0f} s with {args.workers} workers")
    print(header)
    print(table)
    if args.json:
        write_atomic(Path(args.json), json.dumps({"header": header, "results": results_json(results)}, indent=1))
    if args.markdown:
        write_atomic(Path(args.markdown), header + "\n\n" + table + "\n")
    bad = sum(bool(violations(r)) for r in results)
    print(f"{bad} of {len(results)} configs violate a limit", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
