"""Build the bundled "your own data" examples from the bundled real genomes (data/genomes).

    python data/own_data/build.py        # rewrites data/own_data/*/{train,dev,test}.csv

Every example is a real window of phage lambda, E. coli K-12 (first 100 kbp) or the human
mitochondrial genome; the labels are computed from the sequence by the rules below. They are
format demos for finetune_gue.py / predict.py, not benchmarks.
- classification/: 80 bp windows, label = the genome it comes from (string labels: ecoli, lambda, mito).
- regression/:     100 bp windows, target gc = fraction of G+C (4 decimals).
- multilabel/:     100 bp windows, labels = ';'-joined names: gc_rich (G+C >= 0.55), gatc (holds the
                   Dam site GATC), homopolymer (holds a run of 5 identical bases); empty when none.
- per_base/:       100 bp windows, label = one digit per base, 1 where the base is inside a CpG
                   dinucleotide (the C or the G of "CG"), else 0.
Windows are non-overlapping, drawn at random (seed 0), and windows with a non-ACGT base are skipped.
"""

import csv
import os
import random
import re

from dnabert2.genome_io import iter_records

HERE = os.path.dirname(os.path.abspath(__file__))
GENOMES = {
    "ecoli": "ecoli_k12_W3110_first100kbp.fa.gz",
    "lambda": "phage_lambda.fa.gz",
    "mito": "human_mito.fa.gz",
}
SIZES = {"train": 240, "dev": 60, "test": 60}


def windows(name: str, width: int) -> list[str]:
    path = os.path.join(HERE, "..", "genomes", GENOMES[name])
    seq = "".join(s for _, s in iter_records([path])).upper()
    cuts = [seq[i : i + width] for i in range(0, len(seq) - width + 1, width)]
    return [w for w in cuts if set(w) <= set("ACGT")]


def gc(seq: str) -> float:
    return (seq.count("G") + seq.count("C")) / len(seq)


def multilabel(seq: str) -> str:
    names = []
    if gc(seq) >= 0.55:
        names.append("gc_rich")
    if "GATC" in seq:
        names.append("gatc")
    if re.search(r"(A{5}|C{5}|G{5}|T{5})", seq):
        names.append("homopolymer")
    return ";".join(names)


def cpg_bases(seq: str) -> str:
    marks = [0] * len(seq)
    for m in re.finditer("(?=CG)", seq):
        marks[m.start()] = marks[m.start() + 1] = 1
    return "".join(map(str, marks))


def pooled(width: int, rng: random.Random) -> list[str]:
    pool = [w for name in GENOMES for w in windows(name, width)]
    rng.shuffle(pool)
    return pool


def write(folder: str, header: list[str], rows_by_split: dict[str, list[list]]) -> None:
    os.makedirs(os.path.join(HERE, folder), exist_ok=True)
    for split, rows in rows_by_split.items():
        with open(os.path.join(HERE, folder, f"{split}.csv"), "w", newline="") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(header)
            writer.writerows(rows)


def split_rows(items: list, make) -> dict[str, list[list]]:
    out, start = {}, 0
    for split, n in SIZES.items():
        out[split] = [make(x) for x in items[start : start + n]]
        start += n
    return out


def main() -> None:
    rng = random.Random(0)
    per_class = {name: windows(name, 80) for name in GENOMES}
    labelled = {}
    for name, ws in per_class.items():
        rng.shuffle(ws)
        labelled[name] = ws
    rows = {}
    start = 0
    for split, n in SIZES.items():
        k = n // len(GENOMES)
        chosen = [(w, name) for name in GENOMES for w in labelled[name][start : start + k]]
        rng.shuffle(chosen)
        rows[split] = [[w, name] for w, name in chosen]
        start += k
    write("classification", ["sequence", "label"], rows)
    write("regression", ["sequence", "gc"], split_rows(pooled(100, rng), lambda w: [w, f"{gc(w):.4f}"]))
    write("multilabel", ["sequence", "labels"], split_rows(pooled(100, rng), lambda w: [w, multilabel(w)]))
    write("per_base", ["sequence", "cpg"], split_rows(pooled(100, rng), lambda w: [w, cpg_bases(w)]))


if __name__ == "__main__":
    main()
