"""Tokenizer benchmark: bp per token and encoding throughput, shipped vs. original tokenizer.json.

    python bench/tokenizer.py --gue-root GUE_ROOT --genome GENOME.fa.gz \
        --original ORIGINAL/tokenizer.json

Both tokenizers run through the same library call (`tokenizers.Tokenizer.encode_batch`, all
cores), on the same strings: the `test.csv` sequences of each GUE task group found under
--gue-root, and --genome-bp of the genome cut into --window bp pieces (upper-cased, since the
original has no normalizer). bp per token excludes [CLS]/[SEP]. Throughput is the best of
--repeats, the tokenizers taking turns within each repeat. --stage-costs adds a table of where
the time goes (each normalizer rule, the pipelines without normalizer / pre-tokenizer), timed on
the largest data set.
"""

import argparse
import base64
import csv
import glob
import json
import os
import struct
import time
from pathlib import Path

from tokenizers import Tokenizer, models

from dnabert2.genome_io import iter_windows

from bench_paths import ROOT  # bench/bench_paths.py

GROUPS = {  # GUE task group -> species, as in the paper
    "prom": "human", "tf": "human", "splice": "human", "EMP": "yeast", "mouse": "mouse", "virus": "virus",
}


def gue_sets(root: str) -> dict[str, list[str]]:
    sets: dict[str, list[str]] = {}
    for path in sorted(glob.glob(os.path.join(root, "**", "test.csv"), recursive=True)):
        rel = os.path.relpath(path, root).split(os.sep)
        group = next((g for g in GROUPS if rel[0].startswith(g)), rel[0])
        with open(path, newline="") as f:
            rows = csv.DictReader(f)
            sets.setdefault(f"GUE {group} ({GROUPS.get(group, '?')})", []).extend(r["sequence"] for r in rows)
    if not sets:
        raise FileNotFoundError(f"--gue-root {root}: no test.csv below it (expected GUE task folders)")
    return sets


def genome_slice(path: str, total_bp: int, window: int) -> list[str]:
    pieces, n = [], 0
    for _, _, w in iter_windows([path], window):
        pieces.append(w)
        n += len(w)
        if n >= total_bp:
            break
    return pieces


def measure(tokenizers: dict[str, str], seqs: list[str], repeats: int) -> dict[str, tuple[float, float]]:
    """bp per token and best-of-`repeats` Mbp/s per tokenizer (given as tokenizer.json text).

    Every repeat encodes with a freshly loaded tokenizer: the BPE model memoizes words shorter
    than 256 characters, so re-encoding the same short GUE sequences with a warm tokenizer would
    time cache lookups, not tokenization. The tokenizers take turns within each repeat, so a slow
    phase of the machine hits all of them alike.
    """
    best = dict.fromkeys(tokenizers, float("inf"))
    tokens = {}
    for _ in range(repeats):
        for name, spec in tokenizers.items():
            tokenizer = Tokenizer.from_str(spec)
            start = time.perf_counter()
            encodings = tokenizer.encode_batch(seqs, add_special_tokens=False)
            best[name] = min(best[name], time.perf_counter() - start)
            tokens[name] = sum(len(e.ids) for e in encodings)
            del encodings  # freed here, not inside the next timed call
    bp = sum(map(len, seqs))
    return {name: (bp / tokens[name], bp / best[name] / 1e6) for name in tokenizers}


def with_parts(spec: str, **parts) -> str:
    """`spec` (tokenizer.json text) with some top-level parts replaced, e.g. normalizer=None."""
    config = json.loads(spec)
    config.update(parts)
    return json.dumps(config)


def null_pipeline() -> str:
    """tokenizer.json text of a pipeline whose model does no work (a one-entry WordLevel)."""
    return Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]")).to_str()


def one_pass_char_map(normalizer_spec: dict) -> dict:
    """The same character mapping as `normalizer_spec`, as ONE sentencepiece `Precompiled` normalizer.

    `Precompiled` looks every character up in a double-array trie (the darts-clone layout that
    sentencepiece serializes) and replaces it with a string from a blob, in a single pass: the
    only stock way to map several characters to different outputs without one regex pass per
    output. The mapping is read off the shipped normalizer, one ASCII character at a time.
    Layout, for keys of one byte: the root unit (index 0) points at offset `root`, so the child
    for byte b sits at root ^ b; that unit carries label b, a has-leaf flag and offset `leaf`, so
    its leaf sits at (root ^ b) ^ leaf; the leaf's value is where b's replacement starts in the
    blob. (Offsets of a removed leading character come out shifted; ids are the same.)
    """
    null = null_pipeline()
    normalizer = Tokenizer.from_str(with_parts(null, normalizer=normalizer_spec)).normalizer
    mapping = {c: normalizer.normalize_str(c) for c in map(chr, range(1, 128))}
    mapping = {c: out for c, out in mapping.items() if out != c}
    root, leaf, has_leaf, is_leaf = 256, 768, 1 << 8, 1 << 31  # children at 256+b, leaves at 512+b
    units = [0] * 768
    units[0] = root << 10  # offsets live in bits 10..30
    blob = b""
    for char, out in mapping.items():
        b = ord(char)
        units[root ^ b] = b | has_leaf | (leaf << 10)
        units[root ^ b ^ leaf] = is_leaf | len(blob)
        blob += out.encode() + b"\0"  # replacements are NUL-terminated
    trie = struct.pack(f"<{len(units)}I", *units)
    charsmap = struct.pack("<I", len(trie)) + trie + blob
    char_map = {"type": "Precompiled", "precompiled_charsmap": base64.b64encode(charsmap).decode()}
    probe = "".join(map(chr, range(1, 128))) * 2
    mapped = Tokenizer.from_str(with_parts(null, normalizer=char_map)).normalizer.normalize_str(probe)
    if mapped != normalizer.normalize_str(probe):
        raise AssertionError("the one-pass character map does not normalize like the shipped normalizer")
    return char_map


def stage_costs(shipped: str, original: str | None, seqs: list[str], repeats: int) -> None:
    """Where encoding time goes, in ns per bp: each normalizer rule of the shipped tokenizer alone
    (on top of a pipeline whose model does no work), and the full tokenizers with their
    normalizer or pre-tokenizer taken out."""
    null = null_pipeline()
    normalizer = json.loads(shipped)["normalizer"]
    rules = normalizer["normalizers"]
    char_map = one_pass_char_map(normalizer)
    specs = {"no model, no normalizer": null}
    specs.update({f"no model + rule {json.dumps(r['pattern'])} -> {r['content']!r}": with_parts(null, normalizer=r) for r in rules})
    alternatives = {  # rejected designs, for comparison
        "no model + alternative rule Unicode \\s+ -> ''": {"type": "Replace", "pattern": {"Regex": "\\s+"}, "content": ""},
        "no model + alternative Lowercase (case folding in one normalizer)": {"type": "Lowercase"},
        "no model + alternative one-pass character map (Precompiled, same mapping)": char_map,
    }
    specs.update({name: with_parts(null, normalizer=n) for name, n in alternatives.items()})
    specs.update({"shipped": shipped, "shipped without normalizer": with_parts(shipped, normalizer=None),
                  "shipped with the one-pass character map": with_parts(shipped, normalizer=char_map)})
    if original:
        specs.update({"original": original, "original without pre-tokenizer": with_parts(original, pre_tokenizer=None)})
    results = measure(specs, seqs, repeats)
    print(f"\n{len(seqs):,} sequences, {sum(map(len, seqs)):,} bp\n\n| pipeline | ns per bp |\n|---|---|")
    for name, (_, mbps) in results.items():
        print(f"| {name} | {1e3 / mbps:.1f} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tokenizer", default=str(ROOT / "tokenizer.json"), help="the shipped tokenizer.json")
    p.add_argument("--original", default=None, help="path to the original DNABERT-2 tokenizer.json")
    p.add_argument("--gue-root", default=str(ROOT / "data" / "gue_sample"), help="folder searched for */test.csv")
    p.add_argument("--genome", default=str(ROOT / "data" / "genomes" / "phage_lambda.fa.gz"))
    p.add_argument("--genome-bp", type=int, default=2_000_000)
    p.add_argument("--window", type=int, default=10_000)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--stage-costs", action="store_true", help="also time each normalizer rule and pipeline stage")
    args = p.parse_args()

    tokenizers = {"shipped": Path(args.tokenizer).read_text()}
    if args.original:
        tokenizers["original"] = Path(args.original).read_text()
    datasets = gue_sets(args.gue_root)
    datasets[f"genome {Path(args.genome).name}"] = genome_slice(args.genome, args.genome_bp, args.window)

    names = list(tokenizers)
    header = "| data | sequences | bp | " + " | ".join(f"{n} bp/token | {n} Mbp/s" for n in names)
    if args.original:
        header += " | bp/token shipped/original | speed shipped/original"
    print(header + " |")
    print("|" + "---|" * (header.count("|") - 0))
    for data, seqs in datasets.items():
        results = measure(tokenizers, seqs, args.repeats)
        row = f"| {data} | {len(seqs):,} | {sum(map(len, seqs)):,} | "
        row += " | ".join(f"{results[n][0]:.3f} | {results[n][1]:.1f}" for n in names)
        if args.original:
            (bs, ss), (bo, so) = results["shipped"], results["original"]
            row += f" | {bs / bo:.3f} | {ss / so:.2f}"
        print(row + " |")
    if args.stage_costs:
        largest = max(datasets.values(), key=lambda seqs: sum(map(len, seqs)))
        stage_costs(tokenizers["shipped"], tokenizers.get("original"), largest, args.repeats)


if __name__ == "__main__":
    main()
