"""Where the bench scripts find the repository: `BENCH` (this folder) and `ROOT` (the repository root,
with data/, the shipped checkpoint and tokenizer).

Lives here: those two paths, once, for every bench script (`from bench_paths import ROOT`: a script's
own folder is on sys.path when it runs, and pytest puts bench/ there through `pythonpath`).
"""

from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
