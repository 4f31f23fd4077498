"""One command for when a CUDA GPU is at hand: is the Triton kernel right and fast there?

    python bench/gpu_check.py [--out_dir gpu_check_report] [--sections aot,kernel,parity,attention,train]
                              [--max_length 4096] [--config_sweep true] [--train_steps 3]

In one process on one CUDA device (cuda:0), section by section:
  aot        every autotune config compiled ahead of time for sm_80 and sm_90 (bench/triton_aot.py,
             in a subprocess: it needs real triton.jit kernels); registers, spills, shared memory, wgmma.
  kernel     flash_attn_varlen_func forward + backward vs the float64 reference (bench/kernel_check.py)
             in fp32 (IEEE and tf32), fp16 and bf16, packed lengths up to --max_length, at the config the
             autotuner picks; then, with --config_sweep, at every autotune config of each kernel (bf16).
  parity     the model with attn_implementation="triton" on the parity fixtures (tests/fixtures/parity):
             last hidden state and classification logits vs the original's.
  attention  the bench/attention.py table (Triton vs SDPA + float mask vs FlexAttention).
  train      bench/train_throughput.py: dnabert2-117m training tokens/s and MFU in bf16, triton vs sdpa.
It writes report.md and report.json into --out_dir (each atomically) and returns 1 if any check failed.

Without CUDA it runs what is honest on a CPU and says what it skipped: aot (a cross-compile needs no
GPU), kernel on tiny shapes and parity, both in Triton's interpreter (TRITON_INTERPRET=1, set here
before triton is first imported); attention and train are skipped, since they measure GPU speed.

Lives here: the section order, the GPU/CPU case lists and the report. Not here: the compile logic
(bench/triton_aot.py), the reference and tolerances (bench/kernel_check.py), the benchmark bodies
(bench/attention.py, bench/train_throughput.py).
"""

import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch  # torch does not import triton

from bench_paths import BENCH, ROOT  # sibling bench modules: bench/ is on sys.path (script folder, or pytest's pythonpath)

SECTIONS = ("aot", "kernel", "parity", "attention", "train")
GPU_ONLY = ("attention", "train")
PARITY_FIXTURES = ROOT / "tests" / "fixtures" / "parity"
PARITY_CONFIGS = ("cfg_a", "cfg_b")
PARITY_ATOL = 1e-5  # max |error| allowed against the original's outputs, as in tests/test_model_parity.py


@dataclass
class GpuCheckArguments:
    out_dir: str = field(default="gpu_check_report", metadata={"help": "report.md and report.json are written here"})
    sections: str = field(default=",".join(SECTIONS), metadata={"help": f"comma-separated, of {SECTIONS}"})
    max_length: int = field(default=4096, metadata={"help": "longest sequence of the CUDA kernel cases"})
    config_sweep: bool = field(default=True, metadata={"help": "CUDA: also check every autotune config (bf16)"})
    attention_total_tokens: int = field(default=16384, metadata={"help": "tokens per attention benchmark batch"})
    attention_repeats: int = field(default=10, metadata={"help": "timed calls per attention benchmark row"})
    train_batch: int = field(default=8, metadata={"help": "training batch (genome crops of 500-1500 bp)"})
    train_steps: int = field(default=3, metadata={"help": "timed training steps (after one warm-up)"})
    aot_workers: int = field(default=2, metadata={"help": "compile processes for the aot section"})
    aot_jobs: str = field(default="", metadata={"help": "aot: compile only these (bench/triton_aot.py --jobs); default every config"})


def kernel_plan(cuda: bool, max_length: int = 4096):
    """[(Case, dtype, fp32_precision)] for the kernel section: real shapes on CUDA, tiny ones in the interpreter."""
    from kernel_check import Case

    if cuda:
        cases = [Case(12, 64, tuple(n for n in (1, 17, 300, 1000, max_length) if n <= max_length)), Case(4, 128, (129, min(2048, max_length)))]
        dtypes = [(torch.float32, "ieee"), (torch.float32, "tf32"), (torch.float16, "ieee"), (torch.bfloat16, "ieee")]
    else:
        cases = [Case(2, 16, (1, 17, 40))]
        dtypes = [(torch.float32, "ieee"), (torch.float16, "ieee")]  # numpy, under the interpreter, has no bfloat16
    return [(case, dtype, precision) for case in cases for dtype, precision in dtypes]


def kernel_rows(device: str, max_length: int) -> list[dict]:
    """Each planned case, at the config the autotuner picks."""
    from kernel_check import check_case, failures

    rows = []
    for case, dtype, precision in kernel_plan(device == "cuda", max_length):
        errors = check_case(case, dtype, device, precision)
        rows.append({"case": case.name, "dtype": str(dtype).removeprefix("torch."), "fp32_precision": precision,
                     "config": "autotuned", **errors, "failures": failures(errors)})
    return rows


def config_sweep_rows(device: str) -> list[dict]:
    """bf16, head_dim 64, one packed batch: every autotune config of each kernel, pinned in turn."""
    from kernel_check import Case, check_case, failures

    from dnabert2.flash_attn_triton import KERNEL_NAMES, autotune_configs, kernel_meta, pinned_config

    case = Case(4, 64, (1, 200, 1000))
    rows = []
    for kernel in KERNEL_NAMES:
        for config in autotune_configs(kernel, kernel_meta(case.head_dim, False, True)):
            with pinned_config(config, kernels=(kernel,)):
                errors = check_case(case, torch.bfloat16, device)
            rows.append({"case": case.name, "dtype": "bfloat16", "fp32_precision": "-", "config": f"{kernel}: {config}",
                         **errors, "failures": failures(errors)})
    return rows


def parity_rows(device: str) -> list[dict]:
    """The fixture models with attn_implementation="triton": errors of the last hidden state (real
    tokens) and the classification logits against the original's outputs."""
    from safetensors.torch import load_file

    from dnabert2.configuration_bert import BertConfig
    from dnabert2.modeling_bert import BertForSequenceClassification

    rows = []
    for name in PARITY_CONFIGS:
        folder = PARITY_FIXTURES / name
        weights, inputs, outputs = (load_file(folder / f"{part}.safetensors") for part in ("weights", "inputs", "outputs"))
        model = BertForSequenceClassification(BertConfig.from_pretrained(folder, attn_implementation="triton"))
        own = model.state_dict()
        missing = sorted(set(own) - set(weights))
        if missing:
            raise KeyError(f"{folder / 'weights.safetensors'}: no weights for {missing[:5]}")
        model.load_state_dict({k: weights[k] for k in own}, strict=True)
        model = model.to(device).eval()
        ids, mask = inputs["input_ids"].to(device), inputs["attention_mask"].to(device)
        real = mask.bool()
        # One forward pass: the classifier's call of model.bert is captured by a hook, so the last
        # hidden state checked is the one the logits were computed from (a second model.bert pass
        # would repeat the same computation; in the CPU interpreter it was most of this section).
        encoded = []
        hook = model.bert.register_forward_hook(lambda module, args, output: encoded.append(output))
        try:
            with torch.no_grad():
                logits = model(ids, mask).logits
        finally:
            hook.remove()
        (bert_output,) = encoded
        hidden = bert_output.last_hidden_state
        errors = {
            "last_hidden_state": (hidden[real].cpu() - outputs["last_hidden_state"][real.cpu()]).abs().max().item(),
            "cls_logits": (logits.cpu() - outputs["cls_logits"]).abs().max().item(),
        }
        rows.append({"fixture": name, **errors, "atol": PARITY_ATOL,
                     "failures": [f"{k}: {v:.3g} > {PARITY_ATOL}" for k, v in errors.items() if v > PARITY_ATOL]})
    return rows


def aot_rows(workers: int, jobs: str = "") -> list[dict]:
    """bench/triton_aot.py in a subprocess without TRITON_INTERPRET; its JSON results."""
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "aot.json"
        env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
        extra = ["--jobs", jobs] if jobs else []
        proc = subprocess.run([sys.executable, str(BENCH / "triton_aot.py"), "--workers", str(workers), "--json", str(out), *extra],
                              env=env, capture_output=True, text=True)
        if not out.exists():
            raise RuntimeError(f"bench/triton_aot.py wrote no results (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
        results = json.loads(out.read_text())["results"]
    return [{**r["job"], **{k: v for k, v in r.items() if k != "job"}, "failures": r["violations"]} for r in results]


def attention_rows(args: GpuCheckArguments) -> list[dict]:
    from attention import benchmark_rows

    return list(benchmark_rows(torch.bfloat16, args.attention_total_tokens, 12, 64, args.attention_repeats))


def train_rows(args: GpuCheckArguments) -> list[dict]:
    from train_throughput import measure

    rows = []
    for attn in ("triton", "sdpa"):
        lines = measure("dnabert2-117m", args.train_batch, args.train_steps, "cuda", attn, ["bfloat16"])
        header = next(lines)
        rows += [{"attn": attn, "setup": header, **row} for row in lines]
    return rows


def parse_sections(text: str) -> list[str]:
    sections = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in sections if s not in SECTIONS]
    if unknown or not sections:
        raise ValueError(f"--sections: {unknown or text!r} not allowed; expected a comma-separated list of {SECTIONS}")
    return sections


def run_sections(args: GpuCheckArguments, cuda: bool) -> dict:
    """{section: {"status": "ran"|"skipped"|"error", "seconds", "rows" | "reason"}} in SECTIONS order."""
    device = "cuda" if cuda else "cpu"
    runners = {
        "aot": lambda: aot_rows(args.aot_workers, args.aot_jobs),
        "kernel": lambda: kernel_rows(device, args.max_length) + (config_sweep_rows(device) if cuda and args.config_sweep else []),
        "parity": lambda: parity_rows(device),
        "attention": lambda: attention_rows(args),
        "train": lambda: train_rows(args),
    }
    report = {}
    for section in parse_sections(args.sections):
        if section in GPU_ONLY and not cuda:
            report[section] = {"status": "skipped", "reason": "no CUDA device: this section measures GPU speed"}
            print(f"[gpu_check] {section}: SKIPPED (no CUDA device)", flush=True)
            continue
        start = time.perf_counter()
        try:
            rows = runners[section]()
            report[section] = {"status": "ran", "rows": rows}
        except Exception:  # noqa: BLE001 -- one failing section must not hide the others' results
            report[section] = {"status": "error", "reason": traceback.format_exc(limit=5)}
        report[section]["seconds"] = round(time.perf_counter() - start, 1)
        bad = section_failures(report[section])
        print(f"[gpu_check] {section}: {report[section]['status']} in {report[section]['seconds']} s, "
              f"{len(bad)} failure(s)", flush=True)
    return report


def section_failures(section: dict) -> list[str]:
    if section["status"] == "error":
        return [section["reason"].strip().splitlines()[-1]]
    return [f for row in section.get("rows", []) for f in row.get("failures", [])]


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, list):
        return "; ".join(map(str, value)) or "-"
    return str(value)


def markdown_report(meta: dict, report: dict) -> str:
    lines = ["# bench/gpu_check.py report", "", *(f"- {k}: {v}" for k, v in meta.items()), ""]
    for section, result in report.items():
        lines += [f"## {section}: {result['status']}" + (f" ({result['seconds']} s)" if "seconds" in result else ""), ""]
        if result["status"] != "ran":
            lines += ["```", result["reason"].strip(), "```", ""]
            continue
        rows = result["rows"]
        if rows:
            columns = list(rows[0])
            lines += ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
            lines += ["| " + " | ".join(_cell(r.get(c, "")) for c in columns) + " |" for r in rows]
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from transformers import HfArgumentParser

    (args,) = HfArgumentParser(GpuCheckArguments).parse_args_into_dataclasses(args=argv)
    parse_sections(args.sections)
    cuda = torch.cuda.is_available()
    if not cuda:
        if "triton" in sys.modules and os.environ.get("TRITON_INTERPRET") != "1":
            raise RuntimeError("no CUDA device and triton was imported without TRITON_INTERPRET=1: the kernels cannot run")
        os.environ["TRITON_INTERPRET"] = "1"  # before the first import of triton (flash_attn_triton)
        print("[gpu_check] no CUDA device: kernel and parity run in Triton's CPU interpreter on small shapes; "
              f"{', '.join(GPU_ONLY)} are skipped", flush=True)
    from triton_aot import write_atomic

    import triton

    start = time.perf_counter()
    meta = {
        "device": torch.cuda.get_device_name(0) if cuda else "CPU (Triton interpreter)",
        "torch": torch.__version__, "triton": triton.__version__,
        "arguments": json.dumps(asdict(args)),
    }
    report = run_sections(args, cuda)
    meta["total seconds"] = round(time.perf_counter() - start, 1)
    failed = {s: section_failures(r) for s, r in report.items() if section_failures(r)}
    meta["result"] = "PASS" if not failed else "FAIL: " + ", ".join(f"{s} ({len(f)})" for s, f in failed.items())
    out = Path(args.out_dir)
    write_atomic(out / "report.json", json.dumps({"meta": meta, "sections": report}, indent=1, default=str))
    write_atomic(out / "report.md", markdown_report(meta, report))
    print(f"[gpu_check] {meta['result']}; wrote {out / 'report.md'} and {out / 'report.json'}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
