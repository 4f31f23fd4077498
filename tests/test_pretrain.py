"""pretrain.py: a real (tiny) training run, resume, torchrun, masking, data stream and bad input."""

import json
import os
import socket
import subprocess
import sys

import pytest
import torch

from helpers import REPO_ROOT
from dnabert2 import pretrain
from dnabert2.dna_tokenizer import load_tokenizer
from dnabert2.genome_io import iter_records
from dnabert2.pretraining_data import GenomeCropStream, MLMCollator, MLMMasker, heldout_examples, scan_records

LAMBDA = str(REPO_ROOT / "data" / "genomes" / "phage_lambda.fa.gz")
MITO = str(REPO_ROOT / "data" / "genomes" / "human_mito.fa.gz")
COMMON = [
    "--model_config", "dnabert2-tiny", "--train_files", LAMBDA, MITO, "--min_bp", "100", "--max_bp", "400",
    "--per_device_train_batch_size", "8", "--learning_rate", "3e-3", "--warmup_steps", "2",
    "--report_to", "none", "--dataloader_pin_memory", "false", "--disable_tqdm", "true", "--seed", "7",
]


def run(output_dir, *extra):
    return pretrain.main([*COMMON, "--output_dir", str(output_dir), *extra])


def read_batches(path):
    return [json.loads(line) for line in open(path)]


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(str(REPO_ROOT))


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("smoke")
    run(out, "--max_steps", "30", "--logging_steps", "5", "--eval_strategy", "steps", "--eval_steps", "30",
        "--save_steps", "30", "--max_eval_examples", "16")
    return out


def test_smoke_run_learns(smoke_run):
    log = json.loads((smoke_run / "checkpoint-30" / "trainer_state.json").read_text())["log_history"]
    losses = [h["loss"] for h in log if "loss" in h]
    assert len(losses) == 6
    assert losses[-1] < losses[0] - 0.5, f"loss did not clearly decrease: {losses}"


def test_smoke_run_reports_padding_metrics_and_curves(smoke_run):
    results = json.loads((smoke_run / "all_results.json").read_text())
    assert 0.0 <= results["padding_fraction"] < 0.5
    assert 0.0 <= results["eval_mlm_accuracy"] <= 1.0 and results["eval_loss"] > 0
    assert (smoke_run / "curves.png").stat().st_size > 0
    assert "padding_fraction" in (smoke_run / "log.csv").read_text().splitlines()[0]


def test_eval_metrics_equal_a_manual_evaluation_of_the_saved_model(smoke_run, tokenizer):
    from dnabert2.modeling_bert import BertForMaskedLM

    results = json.loads((smoke_run / "all_results.json").read_text())
    model = BertForMaskedLM.from_pretrained(smoke_run).eval()
    # The run's eval set: default --eval_fraction 0.02, windows of --max_bp 400, --max_eval_examples 16, masks from
    # the default --eval_mask_seed 42 (not --seed 7). Held out: 971 bp of lambda (400 + 400 + 171) and 332 bp of
    # mito: 4 windows, one eval batch of 8.
    examples = heldout_examples(scan_records([LAMBDA, MITO], 0.02, 100), tokenizer, 400, 16, 42)
    assert len(examples) == 4
    collator, correct, total, losses = MLMCollator(tokenizer), 0, 0, []
    with torch.no_grad():
        for i in range(0, len(examples), 8):  # Trainer's default eval batch; eval_loss is the mean of batch losses
            batch = collator(examples[i : i + 8])
            out = model(**batch)
            targets = batch["labels"][batch["labels"] != -100]
            correct += int((out.logits.argmax(-1) == targets).sum())
            total += targets.numel()
            losses.append(float(out.loss))
    assert results["eval_mlm_accuracy"] == pytest.approx(correct / total, abs=1e-9)
    assert results["eval_loss"] == pytest.approx(sum(losses) / len(losses), abs=1e-4)


def test_checkpoints_are_hub_folders_that_load_offline_in_a_fresh_process(smoke_run):
    for folder in (smoke_run, smoke_run / "checkpoint-30"):
        names = set(os.listdir(folder))
        assert {"config.json", "model.safetensors", "modeling_bert.py", "tokenizer.json", "tokenizer_config.json"} <= names
        script = (
            "import sys; from transformers import AutoModelForMaskedLM, AutoTokenizer;"
            "m = AutoModelForMaskedLM.from_pretrained(sys.argv[1], trust_remote_code=True);"
            "t = AutoTokenizer.from_pretrained(sys.argv[1], trust_remote_code=True);"
            "print(m(**t(['ACGTAGGATTACA'], return_tensors='pt')).logits.shape)"
        )
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        result = subprocess.run([sys.executable, "-c", script, str(folder)], capture_output=True, text=True, env=env)
        assert result.returncode == 0, result.stderr[-2000:]
        assert "4096" in result.stdout


def test_resume_continues_with_the_same_batches_and_losses(tmp_path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    args = ["--max_steps", "12", "--save_steps", "6", "--record_batches", "true", "--logging_steps", "100"]
    run(straight, *args)
    run(resumed, *args, "--resume_from_checkpoint", str(straight / "checkpoint-6"))
    expected = [b for b in read_batches(straight / "batches_rank0.jsonl") if b["step"] > 6]
    got = read_batches(resumed / "batches_rank0.jsonl")
    assert [b["step"] for b in got] == list(range(7, 13))
    assert [b["batch"] for b in got] == [b["batch"] for b in expected]
    for a, b in zip(got, expected):
        assert abs(a["loss"] - b["loss"]) < 1e-4


def test_held_out_masks_depend_on_eval_mask_seed_not_on_the_training_seed(tmp_path, monkeypatch):
    """Runs of different --seed score the same masked positions, so their eval losses compare."""
    heldout_examples, built = pretrain.heldout_examples, []
    monkeypatch.setattr(pretrain, "heldout_examples", lambda *a, **k: built.append(heldout_examples(*a, **k)) or built[-1])
    args = ["--max_steps", "1", "--eval_strategy", "steps", "--eval_steps", "1", "--max_eval_examples", "8",
            "--save_strategy", "no"]
    for name, extra in (("seed7", ["--seed", "7"]), ("seed8", ["--seed", "8"]), ("mask43", ["--eval_mask_seed", "43"])):
        run(tmp_path / name, *args, *extra)
    seed7, seed8, mask43 = ([example["labels"] for example in examples] for examples in built)
    assert seed7 == seed8
    assert seed7 != mask43


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_torchrun_two_processes_see_different_data(tmp_path):
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={free_port()}",
        str(REPO_ROOT / "pretrain.py"), *COMMON, "--output_dir", str(tmp_path), "--max_steps", "4",
        "--record_batches", "true", "--use_cpu", "--ddp_backend", "gloo", "--save_strategy", "no",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [read_batches(tmp_path / f"batches_rank{r}.jsonl") for r in (0, 1)]
    assert [b["step"] for b in ranks[0]] == [b["step"] for b in ranks[1]] == [1, 2, 3, 4]
    assert all(a["batch"] != b["batch"] for a, b in zip(*ranks))


# --- masking ----------------------------------------------------------------------------------

def test_masking_rates_and_special_tokens(tokenizer):
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 4096, (400, 500), generator=g)
    ids[:, 0], ids[:, -1], ids[:, 100] = 1, 2, 0  # [CLS], [SEP], an [UNK] inside
    masked, labels = MLMMasker(tokenizer)(ids, torch.Generator().manual_seed(1))
    chosen = labels != -100
    eligible = ids >= 5
    assert not chosen[~eligible].any(), "special tokens are never chosen"
    rate = chosen.sum() / eligible.sum()
    assert abs(rate - 0.15) < 0.005
    assert torch.equal(labels[chosen], ids[chosen])
    to_mask = (masked[chosen] == tokenizer.mask_token_id).float().mean()
    unchanged = (masked[chosen] == ids[chosen]).float().mean()
    assert abs(to_mask - 0.8) < 0.01
    assert abs(unchanged - 0.1) < 0.01  # plus the rare random draw of the same id
    assert torch.equal(masked[~chosen], ids[~chosen])
    assert (masked[chosen & (masked != tokenizer.mask_token_id)] >= 5).all(), "random replacements are real tokens"


def test_collator_pads_and_never_labels_padding(tokenizer):
    collator = MLMCollator(tokenizer)
    batch = collator([
        {"input_ids": [1] + [7] * 50 + [2], "labels": [-100] + [7] * 50 + [-100]},
        {"input_ids": [1, 9, 2], "labels": [-100, 9, -100]},
    ])
    assert batch["input_ids"].shape == (2, 52)
    assert (batch["input_ids"][1, 3:] == tokenizer.pad_token_id).all()
    assert (batch["labels"][1, 3:] == -100).all() and batch["labels"][1, 1] == 9
    assert collator.padding_fraction() == pytest.approx(1 - 55 / 104)


# --- the data stream --------------------------------------------------------------------------

def _stream(tokenizer, **kwargs):
    spans = scan_records([LAMBDA], 0.05, 100)
    defaults = dict(min_bp=100, max_bp=300, rc_prob=0.0, seed=3, group_size=4, shuffle_buffer=64)
    return spans, GenomeCropStream(spans, tokenizer, **{**defaults, **kwargs})


def test_stream_is_deterministic_and_each_pass_differs(tokenizer):
    _, stream = _stream(tokenizer)
    first = [e["input_ids"].tolist() for e in stream.passes(2)]
    assert first == [e["input_ids"].tolist() for e in stream.passes(2)]
    one_pass = len([e for e in stream.passes(1)])
    assert first[:one_pass] != first[one_pass : 2 * one_pass]


def test_training_crops_never_touch_the_held_out_tail(tokenizer):
    spans, stream = _stream(tokenizer)
    (_, genome), = iter_records([LAMBDA])
    train_region, tail = genome[: spans[0].train_end], genome[spans[0].train_end :]
    unmasked = [torch.where(e["labels"] == -100, e["input_ids"], e["labels"]) for e in stream.passes(1)]
    crops = ["".join(tokenizer.convert_ids_to_tokens(ids[1:-1])) for ids in unmasked]
    assert all(c in train_region for c in crops)
    assert all(100 <= len(c) <= 300 for c in crops[:-1])
    assert len(tail) == spans[0].length - spans[0].train_end


def _text(tokenizer, example):
    """The DNA of a masked example: labels restore the masked tokens."""
    ids = torch.where(torch.as_tensor(example["labels"]) == -100, torch.as_tensor(example["input_ids"]),
                      torch.as_tensor(example["labels"]))
    return "".join(tokenizer.convert_ids_to_tokens(ids[1:-1].tolist()))


def test_eval_windows_tile_only_the_held_out_tails(tokenizer):
    spans = scan_records([LAMBDA, MITO], 0.05, 100)
    # lambda: 48,502 bp, ceil(5%) = 2,426 held out; mito: 16,569 bp, 829 held out.
    assert [(s.length, s.train_end) for s in spans] == [(48502, 46076), (16569, 15740)]
    (_, lam), = iter_records([LAMBDA])
    (_, mito), = iter_records([MITO])
    # 300-bp windows from the first held-out base on; a last piece shorter than 75 bp (300 // 4) is dropped.
    expected = [lam[a : a + 300] for a in range(46076, 48502 - 300 + 1, 300)]  # 8 windows, a 26-bp rest dropped
    expected += [mito[15740:16040], mito[16040:16340], mito[16340:16569]]  # the 229-bp rest is kept
    got = [_text(tokenizer, e) for e in heldout_examples(spans, tokenizer, 300, 100)]
    assert got == expected


def _n_gap_fasta(tmp_path):
    """Real lambda sequence with a 1,000-bp assembly gap of N in the middle."""
    (_, lam), = iter_records([LAMBDA])
    path = tmp_path / "gapped.fa"
    path.write_text(">gapped\n" + lam[:4000] + "N" * 1000 + lam[4000:8000] + "\n")
    return str(path), lam[:8000]


def test_crops_with_too_many_n_are_skipped(tokenizer, tmp_path):
    path, real = _n_gap_fasta(tmp_path)
    spans = scan_records([path], 0.0, 200)

    def crops(max_n_fraction):
        stream = GenomeCropStream(spans, tokenizer, 200, 200, 0.0, max_n_fraction, seed=1, group_size=1, shuffle_buffer=1)
        unmasked = [torch.where(e["labels"] == -100, e["input_ids"], e["labels"]) for e in stream.passes(1)]
        return ["".join(tokenizer.convert_ids_to_tokens(ids[1:-1].tolist())) for ids in unmasked]

    everything = crops(1.0)
    assert sum(c == "N" * 200 for c in everything) >= 4, "the gap yields all-N crops when nothing is skipped"
    kept = crops(0.1)
    assert kept and all(c.count("N") <= 20 for c in kept)
    assert len(kept) >= len(everything) - 6  # only the <= 6 crops that overlap the gap by > 20 bp go
    assert all(c in real for c in kept if "N" not in c)


def test_init_from_starts_from_the_given_weights(tmp_path):
    from safetensors.torch import load_file

    from dnabert2.configuration_bert import PRESETS, BertConfig
    from dnabert2.modeling_bert import BertForMaskedLM

    torch.manual_seed(123)
    BertForMaskedLM(BertConfig(**PRESETS["dnabert2-tiny"])).save_pretrained(tmp_path / "init")
    start = load_file(tmp_path / "init" / "model.safetensors")
    # A learning rate of 1e-12 (the CLI refuses 0) moves no weight by more than 1e-9, so the output shows the start.
    run(tmp_path / "out", "--init_from", str(tmp_path / "init"), "--max_steps", "1", "--learning_rate", "1e-12",
        "--warmup_steps", "0", "--save_strategy", "no")
    end = load_file(tmp_path / "out" / "model.safetensors")
    assert end.keys() == start.keys()
    assert all(torch.allclose(end[k], start[k], rtol=0, atol=1e-9) for k in start)
    run(tmp_path / "fresh", "--max_steps", "1", "--learning_rate", "1e-12", "--warmup_steps", "0", "--save_strategy", "no")
    fresh = load_file(tmp_path / "fresh" / "model.safetensors")
    assert not torch.allclose(fresh["bert.embeddings.word_embeddings.weight"], start["bert.embeddings.word_embeddings.weight"], rtol=0, atol=1e-3)


def test_reverse_complement_augmentation(tokenizer):
    _, plain = _stream(tokenizer, rc_prob=0.0)
    _, flipped = _stream(tokenizer, rc_prob=1.0)
    (_, genome), = iter_records([LAMBDA])
    unmasked = [torch.where(e["labels"] == -100, e["input_ids"], e["labels"]) for e in flipped.passes(1)]
    crops = ["".join(tokenizer.convert_ids_to_tokens(ids[1:-1])) for ids in unmasked]
    by_hand = str.maketrans("ACGTN", "TGCAN")  # independent of dna_alphabet
    assert all(c.translate(by_hand)[::-1] in genome for c in crops[:20])
    assert not any(c in genome for c in crops[:20]), "every crop was flipped"


def test_batches_group_similar_lengths(tokenizer):
    _, stream = _stream(tokenizer, group_size=8)
    collator = MLMCollator(tokenizer)
    examples = list(stream.passes(1))
    for i in range(0, len(examples) - 7, 8):
        collator(examples[i : i + 8])
    assert collator.padding_fraction() < 0.15


# --- bad input --------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "extra,error,message",
    [
        (["--train_files", "missing.fa"], FileNotFoundError, "missing.fa: no such file"),
        (["--min_bp", "500", "--max_bp", "100"], ValueError, "min_bp 500 is larger than --max_bp 100"),
        (["--model_config", "dnabert2-huge"], ValueError, "neither a preset"),
        (["--min_bp", "60000", "--max_bp", "70000"], ValueError, "no record has a training region of at least"),
    ],
    ids=["missing-file", "min-gt-max", "unknown-preset", "corpus-too-short"],
)
def test_bad_arguments_are_refused(tmp_path, extra, error, message):
    with pytest.raises(error, match=message):
        run(tmp_path, "--max_steps", "2", *extra)


def test_non_fasta_training_file_is_refused(tmp_path):
    bad = tmp_path / "labels.csv"
    bad.write_text("sequence,label\nACGT,1\n")
    with pytest.raises(ValueError, match=r"labels\.csv:1: unexpected character"):
        run(tmp_path / "out", "--max_steps", "2", "--train_files", str(bad))


def test_masked_token_predictions_puts_each_argmax_back_at_its_masked_position():
    """The MLM head returns logits for the labelled positions only, in row-major order; the
    evaluation grid has their argmax there and -100 (IGNORE_INDEX) everywhere else."""
    labels = torch.tensor([[-100, 7, -100], [3, -100, 9]])  # (batch 2, L 3): 3 masked positions
    logits = torch.tensor([[0.1, 0.9, 0.0, 0.0],   # masked position (0, 1): token 1
                           [0.0, 0.0, 0.2, 0.8],   # (1, 0): token 3
                           [0.5, 0.1, 0.1, 0.3]])  # (1, 2): token 0          (3 positions, vocab 4)
    predicted = pretrain.masked_token_predictions(logits, labels)
    assert predicted.tolist() == [[-100, 1, -100], [3, -100, 0]]


@pytest.mark.parametrize("preset", ["dnabert2-small-deep", "dnabert2-small-wide"])
def test_size_presets_match_small_in_compute_and_head_dim(preset):
    """The model-size-at-fixed-compute arms: a different shape, the same work per token as dnabert2-small.

    Non-embedding parameters (what sets the training FLOPs per token) within 2.5% of small's, head dim 64,
    and each preset name resolves through `--model_config`."""
    from dnabert2.modeling_bert import BertForMaskedLM

    def shape_and_work(name: str) -> tuple[int, int, int]:
        config = pretrain.load_config(pretrain.ModelArguments(model_config=name), vocab_size=4096)
        non_embedding = BertForMaskedLM(config).num_parameters(exclude_embeddings=True)
        return config.num_hidden_layers, config.hidden_size // config.num_attention_heads, non_embedding

    small_layers, _, small_work = shape_and_work("dnabert2-small")
    layers, head_dim, work = shape_and_work(preset)
    assert layers != small_layers and head_dim == 64
    assert abs(work - small_work) / small_work < 0.025, (preset, work, small_work)
