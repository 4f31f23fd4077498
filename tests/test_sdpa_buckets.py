"""The sdpa backend on *padded* length buckets: rows whose lengths differ by less than 10% share one
padded block, so the key-padding mask is all that keeps a row from attending to its neighbour's tail.

Every batch here is built so that bert_padding puts all rows in one padded bucket (checked), and
the outputs are compared with independent references: the eager backend, each sequence run alone,
and the original implementation's outputs (tests/fixtures/parity).
"""

import pytest
import torch
import torch.nn.functional as F

from dnabert2 import bert_attention
from dnabert2.bert_padding import MAX_BUCKET_PADDING, PackedBatch
from dnabert2.configuration_bert import BertConfig
from dnabert2.modeling_bert import BertModel

TINY = dict(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64)
ATOL = 1e-5


def tiny_model(seed=0):
    torch.manual_seed(seed)
    return BertModel(BertConfig(**TINY)).eval()


def random_batch(lengths, seed=0):
    """Right-padded random ids (batch, max(lengths)) and the attention mask."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, TINY["vocab_size"], (len(lengths), max(lengths)), generator=g)
    mask = torch.arange(max(lengths))[None, :] < torch.tensor(lengths)[:, None]
    return ids.masked_fill(~mask, 3), mask.long()


def run(model, backend, ids, mask, **kwargs):
    model.config._attn_implementation = backend
    with torch.no_grad():
        return model(ids, mask, **kwargs).last_hidden_state  # (batch, L, hidden)


def assert_one_padded_bucket(mask):
    """bert_padding groups every row of `mask` into a single bucket that pads at least one row."""
    (bucket,) = PackedBatch.from_attention_mask(mask).buckets
    assert bucket.seq_ids == list(range(mask.shape[0]))
    assert bucket.key_mask is not None and bucket.rows is None, "the bucket is padded"
    assert bucket.key_mask.sum(1).tolist() == mask.sum(1).tolist()
    padded = bucket.seqlen * mask.shape[0] - int(mask.sum())
    assert 0 < padded <= MAX_BUCKET_PADDING * bucket.seqlen * mask.shape[0]


@pytest.fixture
def spy_key_masks(monkeypatch):
    """Records the key mask of every block the sdpa backend attends over."""
    seen = []
    real = bert_attention._sdpa_query_chunks

    def spy(q, k, v, key_mask, *args):
        seen.append(key_mask)
        return real(q, k, v, key_mask, *args)

    monkeypatch.setattr(bert_attention, "_sdpa_query_chunks", spy)
    return seen


def assert_rows_match_alone(model, backend, ids, mask, batched):
    for row, n in enumerate(mask.sum(1).tolist()):
        alone = run(model, backend, ids[row : row + 1, :n], None)[0]
        err = (alone - batched[row, :n]).abs().max().item()
        assert err <= ATOL, f"row {row} ({n} tokens): max abs error {err:.3g} against the same sequence alone"


# --- tiny random model ------------------------------------------------------------------------

@pytest.mark.parametrize(
    "lengths",
    [(100, 98, 95), (95, 100), (600, 590, 570)],
    ids=["matmul-path", "two-rows", "fused-kernel-path"],  # blocks > CPU_MATMUL_ATTENTION_MAX_LEN take F.sdpa
)
def test_padded_bucket_matches_eager_and_each_row_alone(lengths, spy_key_masks):
    model = tiny_model()
    ids, mask = random_batch(lengths)
    assert_one_padded_bucket(mask)
    sdpa = run(model, "sdpa", ids, mask)
    assert any(m is not None for m in spy_key_masks), "the forward attended over a padded block"
    eager = run(model, "eager", ids, mask)
    real = mask.bool()
    err = (sdpa - eager)[real].abs().max().item()
    assert err <= ATOL, f"sdpa vs eager: max abs error {err:.3g}"
    assert torch.all(sdpa[~real] == 0)
    assert_rows_match_alone(model, "sdpa", ids, mask, sdpa)


def test_padded_bucket_in_bf16_stays_close_to_fp32():
    model = tiny_model()
    ids, mask = random_batch((100, 98, 95))
    reference = run(model, "sdpa", ids, mask)
    half = run(model.to(torch.bfloat16), "sdpa", ids, mask)
    assert half.dtype == torch.bfloat16
    real = mask.bool()
    cosine = F.cosine_similarity(half.float()[real], reference[real], dim=-1)  # (tokens,)
    assert cosine.min().item() >= 0.999, f"min per-token cosine {cosine.min().item():.5f}"


@pytest.mark.parametrize("lengths,rows_per_chunk", [((100, 98, 95), 7), ((600, 590, 570), 64)])
def test_query_chunks_over_a_padded_bucket_match_eager(lengths, rows_per_chunk, monkeypatch):
    model = tiny_model()
    ids, mask = random_batch(lengths)
    assert_one_padded_bucket(mask)
    eager = run(model, "eager", ids, mask)
    unchunked = run(model, "sdpa", ids, mask)
    n, heads, width = len(lengths), TINY["num_attention_heads"], max(lengths)
    monkeypatch.setattr(bert_attention, "SDPA_BIAS_BUDGET", 4 * n * heads * width * rows_per_chunk)
    starts = []
    real_bias = bert_attention._chunk_bias
    monkeypatch.setattr(
        bert_attention, "_chunk_bias",
        lambda slopes, start, rows, *a: (starts.append((start, rows)), real_bias(slopes, start, rows, *a))[1],
    )
    chunked = run(model, "sdpa", ids, mask)
    chunks_per_layer = -(-width // rows_per_chunk)
    assert starts[:chunks_per_layer] == [
        (s, min(rows_per_chunk, width - s)) for s in range(0, width, rows_per_chunk)
    ], "the query rows were cut into chunks of the size the budget allows"
    real = mask.bool()
    assert (chunked - eager)[real].abs().max().item() <= ATOL
    assert (chunked - unchunked)[real].abs().max().item() <= ATOL


# --- the parity fixtures, re-batched into padded buckets -----------------------------------------

def _rebatched(parity, row):
    """Fixture row `row` (n tokens) between a longer and a shorter variant of itself, lengths within 10%.

    The longer one is the row plus k more tokens (so the fixture row itself is padded in the block),
    the shorter one is the row cut k tokens early; k = max(1, n // 20).
    """
    ids, types = parity.inputs["input_ids"][row], parity.inputs["token_type_ids"][row]
    n = int(parity.inputs["attention_mask"][row].sum())
    k = max(1, n // 20)
    rows = [
        (torch.cat([ids[:n], ids[1 : 1 + k]]), torch.cat([types[:n], types[1 : 1 + k]])),
        (ids[:n], types[:n]),
        (ids[: n - k], types[: n - k]),
    ]
    width = n + k
    batch_ids = torch.full((3, width), 3, dtype=torch.long)
    batch_types = torch.zeros((3, width), dtype=torch.long)
    mask = torch.zeros((3, width), dtype=torch.long)
    for i, (r, t) in enumerate(rows):
        batch_ids[i, : len(r)], batch_types[i, : len(t)], mask[i, : len(r)] = r, t, 1
    return batch_ids, batch_types, mask, n


@pytest.mark.parametrize("row", [0, 1, 2, 3])
def test_parity_rows_in_a_padded_bucket_match_the_original(parity, row, spy_key_masks):
    model = parity.model("cls").bert
    ids, types, mask, n = _rebatched(parity, row)
    assert_one_padded_bucket(mask)
    sdpa = run(model, "sdpa", ids, mask, token_type_ids=types)
    assert any(m is not None for m in spy_key_masks)
    expected = parity.outputs["last_hidden_state"][row, :n]  # the original code's output for this row alone
    err = (sdpa[1, :n] - expected).abs().max().item()
    assert err <= ATOL, f"padded fixture row vs the original: max abs error {err:.3g}"
    eager = run(model, "eager", ids, mask, token_type_ids=types)
    real = mask.bool()
    assert (sdpa - eager)[real].abs().max().item() <= ATOL
    for i in (0, 2):
        m = int(mask[i].sum())
        alone = run(model, "sdpa", ids[i : i + 1, :m], None, token_type_ids=types[i : i + 1, :m])[0]
        assert (alone - sdpa[i, :m]).abs().max().item() <= ATOL
