"""Padding helpers: moving between the padded `(batch, seqlen, ...)` layout and the packed
("unpadded", "varlen") `(total_tokens, ...)` layout that the encoder works in.

Lives here: `PackedBatch`, built once per forward from the attention mask and shared by every
layer, and the length buckets the SDPA backend uses. Not here: attention itself
(bert_attention.py) or any nn.Module.

Positions: a token's position is its rank among the real tokens of its row. For the usual
right-padded (or left-padded) masks this is the column index minus the padding in front of it;
a mask with holes treats the kept tokens as contiguous, on every attention backend alike.
"""

from dataclasses import dataclass, field
from functools import cached_property

import torch

# A length bucket may pad at most this fraction of its tokens (SDPA backend, mixed-length batches).
MAX_BUCKET_PADDING = 0.1


@dataclass
class LengthBucket:
    """Sequences of similar length, attended together as one padded block of `seqlen` columns."""

    seq_ids: list[int]  # ascending
    seqlen: int
    gather_index: torch.Tensor  # (n * seqlen,) rows of the packed tensor; `total_tokens` marks padding
    key_mask: torch.Tensor | None  # (n, seqlen) bool, True on real tokens; None when nothing is padded
    valid: torch.Tensor  # (n * seqlen,) bool, True where gather_index is a real token
    rows: tuple[int, int] | None  # (start, end) when the bucket is one unpadded run of packed rows


@dataclass
class PackedBatch:
    """Where the real tokens of a padded batch live once packed."""

    attention_mask: torch.Tensor  # (batch, seqlen) bool
    indices: torch.Tensor  # (total_tokens,) flat index into batch * seqlen
    cu_seqlens: torch.Tensor  # (batch + 1,) int32, sequence boundaries in the packed layout
    seqlens: list[int] = field(repr=False)  # per sequence, on the host
    max_seqlen: int = 0
    # Per-forward scratch space shared by all layers (e.g. attention biases); never crosses forwards.
    cache: dict = field(default_factory=dict, repr=False)

    @classmethod
    def from_attention_mask(cls, attention_mask: torch.Tensor) -> "PackedBatch":
        if attention_mask.dim() != 2:
            raise ValueError(
                f"attention_mask must be 2-D (batch, seqlen), got shape {tuple(attention_mask.shape)}"
            )
        mask = attention_mask.bool()
        seqlens_t = mask.sum(dim=-1, dtype=torch.int32)  # (batch,)
        cu_seqlens = torch.nn.functional.pad(torch.cumsum(seqlens_t, 0, dtype=torch.int32), (1, 0))
        indices = torch.nonzero(mask.flatten(), as_tuple=False).flatten()
        seqlens = seqlens_t.tolist()
        return cls(mask, indices, cu_seqlens, seqlens, max(seqlens, default=0))

    @property
    def batch_size(self) -> int:
        return self.attention_mask.shape[0]

    @property
    def seqlen(self) -> int:
        return self.attention_mask.shape[1]

    @property
    def total_tokens(self) -> int:
        return self.indices.numel()

    def unpad(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, seqlen, ...) -> (total_tokens, ...)"""
        return x.flatten(0, 1).index_select(0, self.indices)

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        """(total_tokens, ...) -> (batch, seqlen, ...), zeros at padding."""
        out = x.new_zeros((self.batch_size * self.seqlen, *x.shape[1:]))
        out.index_copy_(0, self.indices, x)
        return out.unflatten(0, (self.batch_size, self.seqlen))

    @cached_property
    def positions(self) -> torch.Tensor:
        """(batch, seqlen) int64: each token's rank among the real tokens of its row."""
        return torch.cumsum(self.attention_mask.long(), dim=-1) - 1

    @cached_property
    def buckets(self) -> list[LengthBucket]:
        """Group sequences by length so that each group pads at most MAX_BUCKET_PADDING of its tokens.

        Sequences of identical length share a bucket with no padding at all, so a batch of
        mixed lengths spends no attention work on padding beyond that bound.
        """
        order = sorted((n, i) for i, n in enumerate(self.seqlens) if n > 0)
        groups: list[list[tuple[int, int]]] = []
        for n, i in reversed(order):  # longest first: a bucket's first member sets its width
            if groups:
                group = groups[-1]
                width = group[0][0]
                real = sum(m for m, _ in group) + n
                if width * (len(group) + 1) - real <= MAX_BUCKET_PADDING * width * (len(group) + 1):
                    group.append((n, i))
                    continue
            groups.append([(n, i)])
        device = self.cu_seqlens.device
        starts = self.cu_seqlens.tolist()
        buckets = []
        for group in groups:
            group.sort(key=lambda item: item[1])  # by sequence index, so runs of rows stay contiguous
            width = max(n for n, _ in group)
            columns = torch.arange(width, device=device)  # (width,)
            lengths = torch.tensor([n for n, _ in group], device=device)  # (n,)
            first = torch.tensor([starts[i] for _, i in group], device=device)  # (n,)
            key_mask = columns[None, :] < lengths[:, None]  # (n, width)
            gather = torch.where(key_mask, first[:, None] + columns[None, :], self.total_tokens)
            ids = [i for _, i in group]
            unpadded = all(n == width for n, _ in group)
            contiguous = unpadded and ids == list(range(ids[0], ids[0] + len(ids)))
            buckets.append(
                LengthBucket(
                    seq_ids=ids,
                    seqlen=width,
                    gather_index=gather.flatten(),
                    key_mask=None if unpadded else key_mask,
                    valid=key_mask.flatten(),
                    rows=(starts[ids[0]], starts[ids[0]] + width * len(ids)) if contiguous else None,
                )
            )
        return buckets
