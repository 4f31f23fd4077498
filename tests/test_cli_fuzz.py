"""Seeded fuzz test of the five command-line tools: malformed inputs made from the bundled data.

Every case must end within seconds with exit code 1 (data) or 2 (usage) and exactly one error line
`script.py: error: ...` as the last line of stderr: no traceback, no hang, no output left behind.
The cases of one script run in one subprocess (tests/cli_driver.py, each under an alarm) so that
torch and the Trainer are imported once per script; train_tokenizer.py and embed.py, which start
in about 2 s, are also run as real `python SCRIPT` processes.
"""

import dataclasses
import gzip
import json
import math
import random
import shutil
import subprocess
import sys
import zlib

import pytest
import torch

from helpers import FIXTURES, REPO_ROOT, Parity

LAMBDA = REPO_ROOT / "data" / "genomes" / "phage_lambda.fa.gz"
PROM = REPO_ROOT / "data" / "gue_sample" / "prom" / "prom_core_all"
DRIVER = REPO_ROOT / "tests" / "cli_driver.py"
CASE_SECONDS = 30  # a case that takes longer counts as a hang
JUNK = ["!", "7", "é", "\x07", "\t", "?", "λ", "*", "U+", "-"]  # '-' (gap) and '*' are not DNA either


def fuzz_files(rng: random.Random, folder, count: int) -> list[str]:
    """`count` malformed sequence files made from phage lambda: junk characters, cut gzip, binary, headers only."""
    raw = gzip.open(LAMBDA, "rt").read().splitlines()
    packed = gzip.compress("\n".join(raw).encode())
    makers = [
        lambda: _junk_fasta(rng, raw),
        lambda: packed[: rng.randrange(30, len(packed) - 8)],  # the last 8 bytes are CRC and size
        lambda: bytes(rng.randrange(256) for _ in range(rng.randrange(1, 3000))),
        lambda: "".join(f">{rng.choice(['a', 'b c', 'λ'])}\n" for _ in range(rng.randrange(1, 4))).encode(),
    ]
    paths = []
    for i in range(count):
        kind = i % len(makers)
        path = folder / f"fuzz{i}.{'fa.gz' if kind == 1 else 'fa'}"
        path.write_bytes(makers[kind]())
        paths.append(str(path))
    return paths


def _junk_fasta(rng: random.Random, lines: list[str]) -> bytes:
    lines = list(lines)
    i = rng.randrange(1, len(lines))
    j = rng.randrange(len(lines[i]))
    lines[i] = lines[i][:j] + rng.choice(JUNK) + lines[i][j + 1:]
    newline = rng.choice(["\n", "\r\n"])
    return newline.join(lines).encode("utf-8")


def bad_flag(rng: random.Random, *dataclass_types) -> list[str]:
    """A numeric flag with a value just outside its declared range (cli field metadata)."""
    from dnabert2.cli import _RANGE

    fields = [f for dtype in dataclass_types for f in dataclasses.fields(dtype) if _RANGE in f.metadata]
    f = rng.choice(fields)
    rng_ = f.metadata[_RANGE]
    value = rng_.low - 1 if rng_.low != -math.inf and (rng_.high == math.inf or rng.random() < 0.5) else rng_.high + 0.5
    return [f"--{f.name}", str(int(value) if isinstance(f.default, int) and not isinstance(f.default, bool) else value)]


def run_groups(groups: list[dict]) -> dict[str, list[dict]]:
    """Run every script's cases in one driver process (torch is imported once); results by script."""
    for group in groups:
        group["timeout"] = CASE_SECONDS
    cases = sum(len(g["cases"]) for g in groups)
    result = subprocess.run([sys.executable, str(DRIVER)], input=json.dumps(groups), capture_output=True, text=True,
                            timeout=60 + CASE_SECONDS * cases, env=_env())
    assert result.returncode == 0, result.stderr[-3000:]
    by_prog: dict[str, list[dict]] = {}
    for line in result.stdout.splitlines():
        case = json.loads(line)
        by_prog.setdefault(case["prog"], []).append(case)
    return by_prog


def _env() -> dict:
    import os

    return {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false"}


def assert_one_line_error(prog: str, case: dict) -> None:
    assert case["code"] in (1, 2), case
    assert "Traceback" not in case["stderr"], case["stderr"]
    last = case["stderr"].strip().splitlines()[-1]
    assert last.startswith(f"{prog}: error: ") and len(last) > len(prog) + 12, case
    assert case["seconds"] < CASE_SECONDS


def no_outputs(folder, inputs) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if str(p) not in inputs and p.name != "src")


# --- the cases of each script: (driver group, input paths that may stay) -------------------------

def train_tokenizer_cases(tmp_path):
    from dnabert2.train_tokenizer import Args

    rng = random.Random("train_tokenizer-19")
    files = fuzz_files(rng, tmp_path, 4)
    out = str(tmp_path / "tok")
    cases = [[f, "--vocab_size", "64", "--output", out] for f in files]
    cases += [[str(LAMBDA), "--output", out, *bad_flag(rng, Args)], [str(LAMBDA), "--output", out, "--word_length", "many"]]
    return {"module": "dnabert2.train_tokenizer", "prog": "train_tokenizer.py", "cases": cases}, files


def embed_cases(tmp_path):
    from dnabert2.embed import Args

    rng = random.Random("embed-19")
    files = fuzz_files(rng, tmp_path, 4)
    table = tmp_path / "fuzz.csv"
    seq = gzip.open(LAMBDA, "rt").read().splitlines()[rng.randrange(1, 600)]
    table.write_text(f"id,sequence\nx,{seq}\ny,{seq[:20]}{rng.choice(JUNK)}{seq[21:]}\n")
    files.append(str(table))
    out = str(tmp_path / "x.npy")
    cases = [[f, "--output", out] for f in files]
    cases += [[str(LAMBDA), "--output", out, *bad_flag(rng, Args)], [str(LAMBDA), "--output", str(tmp_path / "x.txt")]]
    return {"module": "dnabert2.embed", "prog": "embed.py", "cases": cases}, files


def pretrain_cases(tmp_path):
    from dnabert2.pretrain import DataArguments

    rng = random.Random("pretrain-19")
    files = fuzz_files(rng, tmp_path, 3)
    common = ["--model_config", "dnabert2-tiny", "--max_steps", "2", "--report_to", "none", "--output_dir", str(tmp_path / "run")]
    cases = [[*common, "--train_files", f] for f in files]
    cases += [[*common, "--train_files", str(LAMBDA), *bad_flag(rng, DataArguments)],
              [*common, "--train_files", str(LAMBDA), "--per_device_train_batch_size", str(rng.randrange(100, 200))]]  # once a hang
    return {"module": "dnabert2.pretrain", "prog": "pretrain.py", "cases": cases}, files


def finetune_gue_cases(tmp_path):
    from dnabert2.finetune_gue import DataArguments

    rng = random.Random("finetune_gue-19")
    rows = (PROM / "train.csv").read_text().splitlines()
    breakers = [
        lambda r: r.rsplit(",", 1)[0] + "," + rng.choice(["yes", "", "-"]),  # label not an integer (1.5 would be a regression target)
        lambda r: r + ",extra",  # one field too many
        lambda r: "," + r.rsplit(",", 1)[1],  # empty sequence
    ]
    cases, inputs = [], []
    for i in range(4):
        task = tmp_path / f"task{i}"
        task.mkdir()
        for split in ("train", "dev", "test"):
            shutil.copy(PROM / f"{split}.csv", task / f"{split}.csv")
        broken = list(rows)
        if i == 3:
            broken[0] = rng.choice(["id,sequence,label", "seq,label", "sequence;label", "sequence,label,"])
        else:
            k = rng.randrange(1, len(rows))
            broken[k] = breakers[i](rows[k])
        (task / "train.csv").write_text("\n".join(broken) + "\n")
        inputs.append(str(task))
        cases.append(["--data_path", str(task), "--output_dir", str(tmp_path / "out")])
    cases.append(["--output_dir", str(tmp_path / "out"), *bad_flag(rng, DataArguments)])
    return {"module": "dnabert2.finetune_gue", "prog": "finetune_gue.py", "cases": cases}, inputs


def convert_original_checkpoint_cases(tmp_path):
    rng = random.Random("convert-19")
    parity = Parity("cfg_b")
    state = parity.state_dict("mlm")
    config = json.loads((parity.dir / "config.json").read_text())
    damage = [
        ("config.json", lambda b: b[: rng.randrange(1, len(b))]),  # cut short
        ("config.json", lambda b: json.dumps({**config, "hidden_act": rng.choice(["relu", "silu"])}).encode()),
        ("pytorch_model.bin", lambda b: b[: rng.randrange(10, len(b))]),
        ("tokenizer.json", lambda b: b[: rng.randrange(1, 200)]),
        ("pytorch_model.bin", lambda b: bytes(rng.randrange(256) for _ in range(500))),
    ]
    cases, inputs = [], []
    for i, (name, spoil) in enumerate(damage):
        src = tmp_path / "src" / str(i)
        src.mkdir(parents=True)
        torch.save(state, src / "pytorch_model.bin")
        (src / "config.json").write_text(json.dumps(config))
        for t in ("tokenizer.json", "tokenizer_config.json"):
            shutil.copy(FIXTURES / "original_tokenizer" / t, src / t)
        (src / name).write_bytes(spoil((src / name).read_bytes()))
        cases.append([str(src), str(tmp_path / "out")])
    cases.append([str(tmp_path / "src" / "0"), str(tmp_path / "src" / "0"), "--overwrite"])  # SRC SRC
    return {"module": "dnabert2.convert_original_checkpoint", "prog": "convert_original_checkpoint.py", "cases": cases}, inputs


BUILDERS = {
    "train_tokenizer.py": train_tokenizer_cases, "embed.py": embed_cases, "pretrain.py": pretrain_cases,
    "finetune_gue.py": finetune_gue_cases, "convert_original_checkpoint.py": convert_original_checkpoint_cases,
}


@pytest.fixture(scope="module")
def fuzz(tmp_path_factory):
    folders, inputs, groups = {}, {}, []
    for prog, build in BUILDERS.items():
        folders[prog] = tmp_path_factory.mktemp(prog.replace(".py", ""))
        group, inputs[prog] = build(folders[prog])
        groups.append(group)
    return run_groups(groups), folders, inputs


@pytest.mark.parametrize("prog", list(BUILDERS))
def test_fuzz_every_case_ends_in_one_error_line_and_leaves_no_output(fuzz, prog):
    results, folders, inputs = fuzz
    assert len(results[prog]) >= 5
    for case in results[prog]:
        assert_one_line_error(prog, case)
    assert no_outputs(folders[prog], inputs[prog]) == []


@pytest.mark.parametrize("script,argv", [
    ("train_tokenizer.py", ["{cut}", "--output", "{out}"]),
    ("embed.py", ["{cut}", "--output", "{out}.npy"]),
])
def test_fuzz_real_process_ends_in_one_line(tmp_path, script, argv):
    cut = tmp_path / "cut.fa.gz"
    cut.write_bytes(LAMBDA.read_bytes()[:5000])
    complete_lines = zlib.decompressobj(31).decompress(cut.read_bytes()).count(b"\n")  # independent of gzip.open
    argv = [a.format(cut=cut, out=tmp_path / "out") for a in argv]
    result = subprocess.run([sys.executable, str(REPO_ROOT / script), *argv], capture_output=True, text=True,
                            timeout=CASE_SECONDS, env=_env())
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert complete_lines == 213
    assert result.stderr.strip().splitlines() == [f"{script}: error: {cut}: truncated or corrupt gzip/bgzip data after line {complete_lines} "
                                                  "(Compressed file ended before the end-of-stream marker was reached)"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.fa.gz"]
