"""Specification of variant_effects, score_variants.py and mutagenesis.py on the bundled genomes.

Windows and token sets are checked against an independent read of the FASTA (gzip + plain
parsing, no pyfaidx) and against spans recomputed here; pll_ratio against a direct PLL computed
from the full MLM logits with one masked copy at a time.
"""

import csv
import gzip
import os
import shutil
from collections import Counter

import numpy as np
import pytest
import torch

from helpers import REPO_ROOT
from dnabert2 import mutagenesis as mutagenesis_cli
from dnabert2 import score_variants as score_variants_cli  # the script; variant_effects.score_variants is the function
from dnabert2.dna_tokenizer import BASES
from dnabert2.variant_effects import (
    ReferenceGenome, Variant, VariantError, RefMismatchError, load_scoring_model, masked_token_logprobs,
    saturation_mutagenesis, score_variants, score_windows, scored_tokens, window_from_sequence,
)

GENOMES = REPO_ROOT / "data" / "genomes"
MITO = str(GENOMES / "human_mito.fa.gz")
LAMBDA = str(GENOMES / "phage_lambda.fa.gz")
SAMPLE_VCF = str(REPO_ROOT / "data" / "variants" / "human_mito_sample.vcf")


def read_fasta(path):
    """Independent reader: {first word of header: sequence}."""
    records, name = {}, None
    with gzip.open(path, "rt") as f:
        for line in f:
            line = line.strip()
            if line.startswith(">"):
                name = line[1:].split()[0]
                records[name] = []
            elif line:
                records[name].append(line.upper())
    return {k: "".join(v) for k, v in records.items()}


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("fasta-cache"))


@pytest.fixture(scope="module")
def mito(cache):
    return ReferenceGenome(MITO, cache)


@pytest.fixture(scope="module")
def mito_seq():
    return read_fasta(MITO)["MT_human"]


@pytest.fixture(scope="module")
def mlm():
    return load_scoring_model(str(REPO_ROOT))


def spans_of(tokenizer, seq):
    enc = tokenizer(seq, add_special_tokens=False, return_offsets_mapping=True)
    return enc["input_ids"], np.array(enc["offset_mapping"]).reshape(-1, 2)


def covered(spans, idx):
    return int(spans[idx, 0].min()), int(spans[idx, 1].max())


def check_cover(tokenizer, w, flank):
    """The scored tokens cover the allele plus the flank in both windows, and the same flanking bases."""
    _, ref_spans = spans_of(tokenizer, w.ref_seq)
    _, alt_spans = spans_of(tokenizer, w.alt_seq)
    ref_idx, alt_idx, lo, hi = scored_tokens(ref_spans, alt_spans, w.start, w.ref_len, w.alt_len, flank)
    r_lo, r_hi = covered(ref_spans, ref_idx)
    a_lo, a_hi = covered(alt_spans, alt_idx)
    assert r_lo <= max(0, w.start - flank) and r_hi >= min(len(w.ref_seq), w.start + w.ref_len + flank)
    assert a_lo <= max(0, w.start - flank) and a_hi >= min(len(w.alt_seq), w.start + w.alt_len + flank)
    assert (r_lo, r_hi) == (lo, hi) and (a_lo, a_hi - (w.alt_len - w.ref_len)) == (lo, hi)  # same flanking bases
    assert list(ref_idx) == list(range(ref_idx[0], ref_idx[-1] + 1))  # contiguous
    return ref_idx, alt_idx, ref_spans, alt_spans


# ------------------------------------------------------------------ windows on a real genome


def test_ref_window_is_the_fasta_slice_centred_on_the_variant(mito, mito_seq):
    v = Variant("MT_human", 3243, "A", "G")
    w = mito.window(v, 100)
    assert w.window_start == 3242 - 50 and len(w.ref_seq) == 100 and w.start == 50
    assert w.ref_seq == mito_seq[3192:3292]
    assert w.alt_seq == mito_seq[3192:3242] + "G" + mito_seq[3243:3292]
    deletion = mito.window(Variant("MT_human", 8270, mito_seq[8269:8279], mito_seq[8269]), 101)
    assert deletion.ref_seq == mito_seq[8274 - 50 : 8274 + 51]  # centred on the middle of the 10 bp REF
    assert deletion.alt_seq == deletion.ref_seq[: deletion.start + 1] + deletion.ref_seq[deletion.start + 10 :]


def test_windows_are_clipped_at_contig_ends(mito, mito_seq):
    first = mito.window(Variant("MT_human", 1, mito_seq[0], "A"), 100)
    assert (first.window_start, first.start, first.ref_seq) == (0, 0, mito_seq[:50])  # [-50, 50) clipped
    last = mito.window(Variant("MT_human", 16569, mito_seq[-1], "A"), 100)
    assert last.ref_seq == mito_seq[16568 - 50 :] and last.start == 50 and last.alt_seq[-1] == "A"


def test_bgzip_fasta_reads_the_same_windows(tmp_path, mito_seq):
    from Bio import bgzf

    path = tmp_path / "mito.fa.bgz"
    with bgzf.BgzfWriter(str(path), "wb") as f:
        f.write(">MT_human\n" + "\n".join(mito_seq[i : i + 70] for i in range(0, len(mito_seq), 70)) + "\n")
    genome = ReferenceGenome(str(path), str(tmp_path / "cache"))
    assert genome.fetch("MT_human", 16000, 16100) == mito_seq[16000:16100]
    assert os.path.isfile(str(path) + ".fai") and os.path.isfile(str(path) + ".gzi")  # built beside it
    shared = tmp_path / "read-only"
    shared.mkdir()
    shutil.copy(path, shared / "mito.fa.bgz")
    shared.chmod(0o555)  # like a shared data folder: the index must go to the cache, even for root
    try:
        genome = ReferenceGenome(str(shared / "mito.fa.bgz"), str(tmp_path / "cache"))
        assert genome.fetch("MT_human", 0, 10) == mito_seq[:10]
        assert os.listdir(shared) == ["mito.fa.bgz"]
        assert any(f.endswith("mito.fa.bgz.fai") for f in os.listdir(tmp_path / "cache"))
    finally:
        shared.chmod(0o755)


def test_bad_variants_name_what_was_expected(mito):
    with pytest.raises(RefMismatchError, match=r"REF C disagrees with the FASTA, which has A at MT_human:3243"):
        mito.check(Variant("MT_human", 3243, "C", "G"))
    with pytest.raises(VariantError, match=r"unknown contig 'chrM'; .* has: MT_human"):
        mito.check(Variant("chrM", 3243, "A", "G"))
    with pytest.raises(VariantError, match=r"position 16,570 .* expected 1..16,569"):
        mito.check(Variant("MT_human", 16570, "A", "G"))
    with pytest.raises(VariantError, match=r"position 16,569 with REF of 2 bp .* expected 1..16,568"):
        mito.check(Variant("MT_human", 16569, "GA", "G"))
    with pytest.raises(VariantError, match=r"position 0 "):
        mito.check(Variant("MT_human", 0, "A", "G"))


# ------------------------------------------------------------------ which tokens are scored


def test_snv_at_a_token_boundary_scores_the_tokens_on_both_sides(mlm, mito_seq):
    tokenizer = mlm[1]
    seq = mito_seq[2000:2400]
    _, spans = spans_of(tokenizer, seq)
    j = len(spans) // 2
    p = int(spans[j, 0])  # first base of token j: a boundary between tokens j-1 and j
    w = window_from_sequence(seq, p, seq[p], "A" if seq[p] != "A" else "C")
    ref_idx, *_ = check_cover(tokenizer, w, 8)
    assert {j - 1, j} <= set(ref_idx.tolist())
    ref_idx0, *_ = check_cover(tokenizer, w, 0)  # without flank: at least the token that holds the base
    assert j in ref_idx0.tolist()


def test_snv_inside_a_long_token_and_at_sequence_ends(mlm, mito_seq):
    tokenizer = mlm[1]
    seq = mito_seq[5000:5400]
    _, spans = spans_of(tokenizer, seq)
    longest = int(np.argmax(spans[:, 1] - spans[:, 0]))
    assert spans[longest, 1] - spans[longest, 0] >= 6
    p = int(spans[longest].mean())
    w = window_from_sequence(seq, p, seq[p], "T" if seq[p] != "T" else "G")
    ref_idx, *_ = check_cover(tokenizer, w, 4)
    assert longest in ref_idx.tolist()
    for p in (0, len(seq) - 1):  # first and last base of the window (contig start / end)
        check_cover(tokenizer, window_from_sequence(seq, p, seq[p], "A" if seq[p] != "A" else "C"), 16)


def test_insertion_and_deletion_scored_tokens_cover_the_allele(mlm, mito_seq):
    tokenizer = mlm[1]
    seq = mito_seq[8100:8500]
    insertion = window_from_sequence(seq, 150, seq[150], seq[150] + "GATTACA")
    _, alt_idx, _, alt_spans = check_cover(tokenizer, insertion, 10)
    lo, hi = covered(alt_spans, alt_idx)
    assert lo <= 140 and hi >= 150 + 8 + 10
    deletion = window_from_sequence(seq, 169, seq[169:179], seq[169])
    ref_idx, _, ref_spans, _ = check_cover(tokenizer, deletion, 10)
    lo, hi = covered(ref_spans, ref_idx)
    assert lo <= 159 and hi >= 179 + 10


# ------------------------------------------------------------------ scores


def direct_pll(model, tokenizer, seq, token_indices):
    """Sum of log p(token | rest) with full logits, one masked copy at a time (no labels path, no batching)."""
    ids, _ = spans_of(tokenizer, seq)
    total = 0.0
    for i in token_indices:
        x = torch.tensor([[tokenizer.cls_token_id, *ids, tokenizer.sep_token_id]])
        x[0, i + 1] = tokenizer.mask_token_id
        with torch.no_grad():
            logits = model(input_ids=x).logits  # (1, L, vocab)
        total += torch.log_softmax(logits[0, i + 1].double(), -1)[ids[i]].item()
    return total


def test_pll_ratio_is_the_masked_pll_difference_over_the_scored_tokens(mlm, mito):
    model, tokenizer = mlm
    w = mito.window(Variant("MT_human", 3243, "A", "G"), 160)
    ref_idx, alt_idx, *_ = check_cover(tokenizer, w, 12)
    expected = direct_pll(model, tokenizer, w.alt_seq, alt_idx) - direct_pll(model, tokenizer, w.ref_seq, ref_idx)
    got = score_windows(model, tokenizer, [w], scores=["pll_ratio"], flank_bp=12, batch_size=5)
    assert got["pll_ratio"][0] == pytest.approx(expected, abs=1e-4)
    assert (got["pll_tokens_ref"][0], got["pll_tokens_alt"][0]) == (len(ref_idx), len(alt_idx))
    assert abs(expected) > 1e-3  # a real change, not a trivially zero score


def test_scores_are_antisymmetric_symmetric_and_zero_without_change(mlm, mito, mito_seq):
    model, tokenizer = mlm
    windows = [
        mito.window(Variant("MT_human", 1555, "A", "G"), 200),
        mito.window(Variant("MT_human", 309, "C", "CCT"), 200),
        mito.window(Variant("MT_human", 8270, mito_seq[8269:8279], mito_seq[8269]), 200),
    ]
    kw = dict(scores=["pll_ratio", "embedding"], flank_bp=16, batch_size=32)
    forward = score_windows(model, tokenizer, windows, **kw)
    backward = score_windows(model, tokenizer, [w.swapped() for w in windows], **kw)
    np.testing.assert_allclose(forward["pll_ratio"], -backward["pll_ratio"], atol=1e-6)
    np.testing.assert_array_equal(forward["pll_tokens_ref"], backward["pll_tokens_alt"])
    for name in ("embedding_cosine", "embedding_l2"):
        np.testing.assert_allclose(forward[name], backward[name], rtol=1e-5, atol=1e-9)
        assert (forward[name] > 0).all()
    same = mito.window(Variant("MT_human", 1555, "A", "A"), 200)
    zero = score_windows(model, tokenizer, [same], **kw)
    assert zero["pll_ratio"][0] == 0.0 and zero["embedding_l2"][0] == 0.0 and zero["embedding_cosine"][0] == pytest.approx(0, abs=1e-12)


def test_embedding_layer_and_strand_options_change_the_distance(mlm, mito):
    model, tokenizer = mlm
    w = mito.window(Variant("MT_human", 1555, "A", "G"), 200)
    last = score_windows(model, tokenizer, [w], scores=["embedding"])["embedding_l2"][0]
    explicit = score_windows(model, tokenizer, [w], scores=["embedding"], layer=model.config.num_hidden_layers)["embedding_l2"][0]
    first = score_windows(model, tokenizer, [w], scores=["embedding"], layer=1)["embedding_l2"][0]
    rc = score_windows(model, tokenizer, [w], scores=["embedding"], rc_average=True)["embedding_l2"][0]
    assert explicit == pytest.approx(last, rel=1e-5) and first != pytest.approx(last, rel=1e-3) and rc != pytest.approx(last, rel=1e-3)
    with pytest.raises(ValueError, match=r"score 'delta_logit' is not available for a mlm checkpoint"):
        score_windows(model, tokenizer, [w], scores=["delta_logit"])


@pytest.fixture(scope="module")
def classifier():
    from dnabert2.modeling_bert import BertForSequenceClassification

    torch.manual_seed(0)
    model = BertForSequenceClassification.from_pretrained(str(REPO_ROOT), num_labels=2, classifier_pooling="mean")
    with torch.no_grad():
        model.classifier.weight.normal_(0, 1.0)  # a head that reacts to the sequence
    return model.eval(), load_scoring_model(str(REPO_ROOT))[1]


def test_mutagenesis_matrix_with_a_classifier_matches_single_variant_scores(classifier, mito_seq):
    model, tokenizer = classifier
    seq = mito_seq[3200:3260]
    matrix = saturation_mutagenesis(model, tokenizer, seq, target_class=1)
    assert matrix.shape == (60, 4)
    for pos, base in enumerate(seq):
        assert matrix[pos, BASES.index(base)] == 0.0 and np.count_nonzero(matrix[pos]) == 3
    cell = score_windows(model, tokenizer, [window_from_sequence(seq, 17, seq[17], "T" if seq[17] != "T" else "A")])
    assert matrix[17, BASES.index("T" if seq[17] != "T" else "A")] == pytest.approx(cell["delta_logit_1"][0], abs=1e-5)
    assert set(cell) == {"embedding_cosine", "embedding_l2", "delta_logit_0", "delta_logit_1", "delta_prob_0", "delta_prob_1"}
    np.testing.assert_allclose(cell["delta_prob_0"], -cell["delta_prob_1"], atol=1e-9)


def test_mutagenesis_pll_cell_matches_score_variants(mlm, mito_seq):
    model, tokenizer = mlm
    seq = mito_seq[1500:1540]
    matrix = saturation_mutagenesis(model, tokenizer, seq, flank_bp=8)
    assert np.count_nonzero(matrix) == 3 * 40
    alt = "C" if seq[9] != "C" else "G"
    single = score_variants(model, tokenizer, [window_from_sequence(seq, 9, seq[9], alt)], scores=["pll_ratio"], flank_bp=8)
    assert matrix[9, BASES.index(alt)] == pytest.approx(single["pll_ratio"][0], abs=1e-5)


def test_mutagenesis_pll_equals_a_naive_computation_cell_by_cell(mlm, mito_seq):
    """Every cell of the deduplicated, batched matrix is the direct masked-PLL difference over its
    scored tokens (full logits, one masked copy and one forward pass at a time)."""
    model, tokenizer = mlm
    seq = mito_seq[2210:2226]  # 16 bp of MT-RNR2, 48 substitutions
    flank = 4
    matrix = saturation_mutagenesis(model, tokenizer, seq, flank_bp=flank, batch_size=7)
    ref_ids, ref_spans = spans_of(tokenizer, seq)
    ref_terms = {}
    for pos, base in enumerate(seq):
        for alt in BASES:
            if alt == base:
                assert matrix[pos, BASES.index(alt)] == 0.0
                continue
            alt_seq = seq[:pos] + alt + seq[pos + 1 :]
            _, alt_spans = spans_of(tokenizer, alt_seq)
            ref_idx, alt_idx, _, _ = scored_tokens(ref_spans, alt_spans, pos, 1, 1, flank)
            for i in ref_idx:
                if i not in ref_terms:
                    ref_terms[i] = direct_pll(model, tokenizer, seq, [i])
            expected = direct_pll(model, tokenizer, alt_seq, alt_idx) - sum(ref_terms[i] for i in ref_idx)
            assert matrix[pos, BASES.index(alt)] == pytest.approx(expected, abs=1e-4), (pos, alt)
    assert np.abs(matrix).max() > 0.1  # real changes, not a matrix of zeros


def test_mutagenesis_pll_runs_one_forward_row_per_distinct_masked_input(mlm, mito_seq):
    """The ref window is masked once per token for all 3 x L alts, and alts whose masked input equals
    another's (a substitution that re-tokenizes only the masked token) share its forward row."""
    model, tokenizer = mlm
    seq = mito_seq[6000:6060]
    flank = 0
    ref_ids, ref_spans = spans_of(tokenizer, seq)
    distinct, requests = set(), 0
    for pos, base in enumerate(seq):
        for alt in BASES:
            if alt != base:
                alt_ids, alt_spans = spans_of(tokenizer, seq[:pos] + alt + seq[pos + 1 :])
                ref_idx, alt_idx, _, _ = scored_tokens(ref_spans, alt_spans, pos, 1, 1, flank)
                for ids, idx in ((ref_ids, ref_idx), (alt_ids, alt_idx)):
                    for i in idx:
                        distinct.add((*ids[:i], tokenizer.mask_token_id, *ids[i + 1 :]))
                        requests += 1
    rows = []
    hook = model.register_forward_pre_hook(lambda module, args, kwargs: rows.append(len(kwargs["input_ids"])), with_kwargs=True)
    try:
        saturation_mutagenesis(model, tokenizer, seq, flank_bp=flank)
    finally:
        hook.remove()
    assert sum(rows) == len(distinct)
    assert len(distinct) < requests / 3  # the sharing is what makes zero-shot mutagenesis fast
    with pytest.raises(ValueError, match=r"masked position 5 is outside a sequence of 3 tokens \(expected 0..2\)"):
        masked_token_logprobs(model, tokenizer, [([10, 11, 12], 5)])


# ------------------------------------------------------------------ command lines


def run_score(tmp_path, variants, output, *extra):
    return score_variants_cli.main(["--variants", str(variants), "--fasta", MITO, "--output", str(output), "--window_bp", "128",
                 "--flank_bp", "8", "--fasta_cache_dir", str(tmp_path / "cache"), *extra])


def read_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_cli_scores_the_sample_vcf_one_row_per_alt_and_counts_symbolic(tmp_path, capsys):
    out = tmp_path / "scores.csv"
    assert run_score(tmp_path, SAMPLE_VCF, out, "--scores", "embedding") == 0
    rows = read_rows(out)
    assert [(r["pos"], r["alt"]) for r in rows if r["pos"] == "8993"] == [("8993", "G"), ("8993", "C")]
    assert len(rows) == 14 and "10000" not in {r["pos"] for r in rows}  # the <DEL> line is not scored
    assert list(rows[0])[:5] == ["chrom", "pos", "id", "ref", "alt"] and "embedding_l2" in rows[0]
    assert "skipped 1 variant(s): symbolic" in capsys.readouterr().err
    with pytest.raises(FileExistsError, match="pass --overwrite"):
        run_score(tmp_path, SAMPLE_VCF, out, "--scores", "embedding")
    assert run_score(tmp_path, SAMPLE_VCF, out, "--scores", "embedding", "--overwrite") == 0


def test_cli_resumes_after_a_kill_without_recomputing_and_writes_atomically(tmp_path, monkeypatch):
    real = score_variants_cli.score_windows
    calls = Counter()

    def dies_on_third_chunk(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("simulated kill")
        return real(*args, **kwargs)

    out = tmp_path / "scores.csv"
    monkeypatch.setattr(score_variants_cli, "score_windows", dies_on_third_chunk)
    with pytest.raises(KeyboardInterrupt):
        run_score(tmp_path, SAMPLE_VCF, out, "--chunk_variants", "4", "--scores", "pll_ratio")
    assert not out.exists()  # nothing half-written
    assert sorted(f for f in os.listdir(str(out) + ".partial") if f.endswith(".npz")) == ["chunk_000000.npz", "chunk_000001.npz"]
    calls.clear()
    monkeypatch.setattr(score_variants_cli, "score_windows", lambda *a, **k: (calls.update(n=1), real(*a, **k))[1])
    assert run_score(tmp_path, SAMPLE_VCF, out, "--chunk_variants", "4", "--scores", "pll_ratio") == 0
    assert calls["n"] == 2  # 14 variants in chunks of 4: only chunks 2 and 3 were computed
    assert not os.path.exists(str(out) + ".partial")
    fresh = tmp_path / "fresh.csv"
    monkeypatch.setattr(score_variants_cli, "score_windows", real)
    run_score(tmp_path, SAMPLE_VCF, fresh, "--chunk_variants", "14", "--scores", "pll_ratio")
    assert read_rows(out) == read_rows(fresh)


def write_vcf(path, lines):
    header = "##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
    with gzip.open(path, "wt") if str(path).endswith(".gz") else open(path, "w") as f:
        f.write(header + "".join("\t".join(map(str, l)) + "\t.\t.\t.\n" for l in lines))


@pytest.mark.parametrize("line, message", [
    (("MT_human", 3243, "v", "C", "G"), r"bad.vcf.gz:4: REF C disagrees with the FASTA, which has A at MT_human:3243 \(pass --skip_ref_mismatch"),
    (("chrM", 3243, "v", "A", "G"), r"bad.vcf.gz:4: unknown contig 'chrM'"),
    (("MT_human", 16570, "v", "A", "G"), r"bad.vcf.gz:4: position 16,570 with REF of 1 bp is out of range"),
    (("MT_human", "x12", "v", "A", "G"), r"bad.vcf.gz:4: pos 'x12' is not an integer"),
    (("MT_human", 3243, "v", "A", "Q"), r"bad.vcf.gz:4: ALT 'Q': expected a non-empty allele"),
])
def test_cli_bad_input_names_the_line(tmp_path, line, message):
    from dnabert2.variant_io import VariantInputError

    path = tmp_path / "bad.vcf.gz"
    write_vcf(path, [("MT_human", 1555, "ok", "A", "G"), line])
    with pytest.raises((VariantInputError, VariantError), match=message):
        run_score(tmp_path, path, tmp_path / "o.csv", "--scores", "embedding")


def test_cli_skips_and_counts_ref_mismatches_and_structural_alts(tmp_path, capsys):
    path = tmp_path / "mixed.tsv"
    path.write_text("chrom\tpos\tref\talt\tlabel\nMT_human\t3243\tC\tG\t1\nMT_human\t1555\tA\tG\t0\n"
                    "MT_human\t100\tG\tG]MT_human:500]\t0\nMT_human\t200\tA\t<INS>\t0\nMT_human\t300\tC\t*\t0\n")
    out = tmp_path / "o.parquet"
    assert run_score(tmp_path, path, out, "--scores", "embedding", "--skip_ref_mismatch") == 0
    err = capsys.readouterr().err
    for kind in ("REF mismatch", "breakend", "symbolic", "spanning deletion"):
        assert f"skipped 1 variant(s): {kind}" in err
    import pyarrow.parquet as pq

    table = pq.read_table(out).to_pydict()
    assert table["pos"] == ["1555"] and table["label"] == ["0"]


def test_mutagenesis_cli_writes_a_matrix_and_a_heatmap_per_sequence(tmp_path, mito_seq):
    fasta = tmp_path / "two.fa"
    fasta.write_text(f">first region\n{mito_seq[100:130]}\n>second\n{mito_seq[200:220]}\n")
    out = tmp_path / "ism"
    assert mutagenesis_cli.main(["--input", str(fasta), "--output_dir", str(out), "--flank_bp", "4"]) == 0
    rows = read_rows(out / "first.csv")
    assert len(rows) == 30 and rows[0]["position"] == "1" and rows[0]["ref"] == mito_seq[100]
    assert rows[0][mito_seq[100]] == "0" and sum(float(rows[0][b]) != 0 for b in BASES) == 3
    assert (out / "first.png").read_bytes()[:4] == b"\x89PNG" and (out / "second.png").exists()
    with pytest.raises(FileExistsError, match="pass --overwrite"):
        mutagenesis_cli.main(["--input", str(fasta), "--output_dir", str(out)])


def test_readme_variant_commands_run_as_written(tmp_path):
    import re
    import subprocess
    import sys

    section = (REPO_ROOT / "README.md").read_text().split("## Variant effects", 1)[1]
    commands = re.search(r"```bash\n(.*?)```", section, re.S).group(1).strip().splitlines()
    assert [c.split()[1] for c in commands] == ["score_variants.py", "mutagenesis.py"]
    os.symlink(REPO_ROOT / "data", tmp_path / "data")
    env = {**os.environ, "HOME": str(tmp_path), "OMP_NUM_THREADS": "1"}  # the gunzipped FASTA cache goes under HOME
    for command in commands:
        argv = [sys.executable, str(REPO_ROOT / command.split()[1]), *command.split()[2:]]
        result = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
    assert len(read_rows(tmp_path / "scores.csv")) == 14
    assert len(read_rows(tmp_path / "ism" / "MT-TL1.csv")) == 75 and (tmp_path / "ism" / "MT-TL1.png").exists()
