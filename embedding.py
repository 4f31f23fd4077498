"""Sequence embeddings from a DNABERT-2 encoder: pooling, batching, long inputs, strand averaging.

Lives here: `embed()`, also reachable as `BertModel.embed(tokenizer, sequences, ...)` on a model
loaded with trust_remote_code, and the token windows and batches that prediction.py shares
(`token_windows`, `window_plan`, `piece_batches`, `kept_parts`). Not here: reading files
(genome_io.py), the complement table (dna_alphabet.py) or the CLI (embed.py).

Rules
- Each sequence is tokenized once, without [CLS]/[SEP]. A sequence of at most `max_tokens`
  tokens (specials included) is encoded in one pass as [CLS] tokens [SEP].
- A longer sequence is cut into windows of max_tokens - 2 tokens that overlap by
  `overlap_tokens`; each window is encoded as [CLS] window [SEP]. Every token takes its vector
  from the window in which it is farthest from an edge (cut at the middle of each overlap), so
  each token is represented exactly once.
- Pooling: "mean" is the mean of the token vectors ([CLS]/[SEP] excluded); "max" their
  element-wise maximum; "cls" the [CLS] vector (the mean of the windows' [CLS] vectors for a
  long sequence); "none" returns every token vector with its (start, end) bp span in the input.
  Padding never enters any of them (sequences are also sorted by length and batched).
- rc_average: the pooled vector of the sequence and of its reverse complement are averaged, so
  both strands give the same embedding (not available with pooling="none").
- layer: which hidden state, indexed as `output_hidden_states` returns them (0 = the embedding
  layer's output, 1..num_layers = the encoder layers, -1 = the last, the default); or a range
  "start:stop" in Python slice notation ("-4:" = the last four layers), whose per-token mean is used.
"""

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from .dna_alphabet import reverse_complement

POOLINGS = ("mean", "max", "cls", "none")
DEFAULT_MAX_TOKENS = 512  # per window, [CLS] and [SEP] included (about 2.5 kbp)
LAST_LAYER = -1


@dataclass
class TokenEmbeddings:
    """Per-token output of pooling="none" for one sequence."""

    vectors: np.ndarray | torch.Tensor  # (tokens, hidden)
    spans: np.ndarray  # (tokens, 2) start and end bp offsets into the input string


def parse_layer(layer: int | str) -> int | slice:
    """-1, "-1", 2 -> an index into hidden_states; "-4:", "1:3" -> a slice (mean over those layers)."""
    if isinstance(layer, int):
        return layer
    text = str(layer).strip()
    try:
        if ":" not in text:
            return int(text)
        parts = text.split(":")
        if len(parts) != 2:
            raise ValueError
        return slice(*(int(p) if p.strip() else None for p in parts))
    except ValueError:
        raise ValueError(f"layer={layer!r}; expected an integer (-1 = last) or a range such as '-4:' or '1:3'") from None


def select_layer(outputs, layer: int | slice, num_layers: int) -> torch.Tensor:
    """The requested hidden state of a BertModel output (batch, L, hidden); a range is averaged."""
    if layer == LAST_LAYER:
        return outputs.last_hidden_state
    states = outputs.hidden_states  # num_layers + 1 tensors (batch, L, hidden)
    if isinstance(layer, slice):
        chosen = states[layer]
        if not chosen:
            raise ValueError(f"layer range {layer.start}:{layer.stop} selects none of the {num_layers + 1} hidden states")
        return torch.stack(chosen).mean(0)  # (batch, L, hidden)
    if not -(num_layers + 1) <= layer <= num_layers:
        raise ValueError(f"layer={layer}; this model has hidden states 0..{num_layers} (or -{num_layers + 1}..-1)")
    return states[layer]


def token_spans(tokenizer, sequences: list[str]) -> tuple[list[list[int]], list[np.ndarray]]:
    """Token ids (no [CLS]/[SEP]) and (tokens, 2) start/end bp spans of each sequence."""
    encoded = tokenizer(list(sequences), add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    return encoded["input_ids"], [np.asarray(o, dtype=np.int64).reshape(-1, 2) for o in encoded["offset_mapping"]]


def token_windows(n_tokens: int, width: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """(window start, window end, keep from, keep to) in token indices; the keeps tile [0, n)."""
    if n_tokens <= width:
        return [(0, n_tokens, 0, n_tokens)]
    stride = width - overlap
    starts = list(range(0, n_tokens - width, stride)) + [n_tokens - width]
    windows = []
    for k, start in enumerate(starts):
        end = start + width
        keep_from = 0 if k == 0 else (start + starts[k - 1] + width) // 2
        keep_to = n_tokens if k == len(starts) - 1 else (starts[k + 1] + end) // 2
        windows.append((start, end, keep_from, keep_to))
    return windows


def window_plan(all_ids: list[list[int]], width: int, overlap: int) -> tuple[list[list[int]], list[list[tuple[int, int, int, int]]]]:
    """Cut each sequence's token ids into windows of `width` tokens (token_windows).

    Returns the pieces to encode and, per sequence, [(piece index, keep from, keep to, window start)].
    """
    pieces, plan = [], []
    for ids in all_ids:
        entries = []
        for start, end, keep_from, keep_to in token_windows(len(ids), width, overlap):
            entries.append((len(pieces), keep_from, keep_to, start))
            pieces.append(ids[start:end])
        plan.append(entries)
    return pieces, plan


def kept_parts(entries: list[tuple[int, int, int, int]], per_piece: list) -> list:
    """The kept token rows of each window of one sequence (window_plan entries), in order; they tile it."""
    return [per_piece[p][lo - start : hi - start] for p, lo, hi, start in entries]


def piece_batches(tokenizer, pieces: list[list[int]], batch_size: int) -> Iterator[tuple[list[int], torch.Tensor, torch.Tensor]]:
    """Token-id lists (no specials) sorted by length, `batch_size` at a time, each encoded as
    [CLS] piece [SEP] and right-padded: (piece indices, input_ids (b, L), attention_mask (b, L))."""
    order = sorted(range(len(pieces)), key=lambda i: len(pieces[i]))
    for b in range(0, len(order), batch_size):
        batch = order[b : b + batch_size]
        length = max(len(pieces[i]) for i in batch) + 2
        ids = torch.full((len(batch), length), tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(batch), length), dtype=torch.long)
        for row, i in enumerate(batch):
            seq = [tokenizer.cls_token_id, *pieces[i], tokenizer.sep_token_id]
            ids[row, : len(seq)] = torch.tensor(seq)
            mask[row, : len(seq)] = 1
        yield batch, ids, mask


def _encode(model, tokenizer, pieces: list[list[int]], batch_size: int, progress: bool, layer: int | slice = LAST_LAYER):
    """Run the encoder on token-id lists (no specials). Returns, in input order, the [CLS] vector
    (H,) of each piece and its token vectors (n, H)."""
    device = next(model.parameters()).device
    cls_vectors: list = [None] * len(pieces)
    token_vectors: list = [None] * len(pieces)
    batches = piece_batches(tokenizer, pieces, batch_size)
    if progress:
        from tqdm.auto import tqdm

        batches = tqdm(batches, total=-(-len(pieces) // batch_size), desc="embedding", unit="batch")
    for batch, ids, mask in batches:
        with torch.no_grad():
            out = model(input_ids=ids.to(device), attention_mask=mask.to(device), output_hidden_states=layer != LAST_LAYER)
            hidden = select_layer(out, layer, model.config.num_hidden_layers)  # (batch, L, hidden)
        for row, i in enumerate(batch):
            cls_vectors[i] = hidden[row, 0]
            token_vectors[i] = hidden[row, 1 : len(pieces[i]) + 1]
    return cls_vectors, token_vectors


def embed(
    model,
    tokenizer,
    sequences: list[str] | str,
    pooling: str = "mean",
    batch_size: int = 16,
    rc_average: bool = False,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    overlap_tokens: int | None = None,
    return_tensors: str = "np",
    progress: bool | None = None,
    layer: int | str = LAST_LAYER,
):
    """Embed DNA sequences with `model` (a DNABERT-2 BertModel; see the module docstring).

    Returns an array (n_sequences, hidden) for pooled modes, or a list of TokenEmbeddings for
    pooling="none". overlap_tokens defaults to an eighth of a window. return_tensors: "np"
    (float32 numpy) or "pt" (torch, the model's dtype).
    progress: show a progress bar (default: when there are more than 10 batches).
    layer: a hidden-state index or a range such as "-4:" (module docstring).
    """
    layer = parse_layer(layer)
    if isinstance(sequences, str):
        sequences = [sequences]
    if pooling not in POOLINGS:
        raise ValueError(f"pooling={pooling!r}; expected one of {POOLINGS}")
    if return_tensors not in ("np", "pt"):
        raise ValueError(f"return_tensors={return_tensors!r}; expected 'np' or 'pt'")
    if rc_average and pooling == "none":
        raise ValueError("rc_average needs a pooled embedding; token positions differ between the two strands")
    if overlap_tokens is None:
        overlap_tokens = (max_tokens - 2) // 8
    if max_tokens < 3 or not 0 <= overlap_tokens < max_tokens - 2:
        raise ValueError(f"need max_tokens >= 3 and 0 <= overlap_tokens < max_tokens - 2, got {max_tokens}, {overlap_tokens}")
    for i, s in enumerate(sequences):
        if not s or not s.strip():
            raise ValueError(f"sequence {i} is empty")

    def embed_strand(strand: list[str]):
        # long inputs are windowed, so the tokenizer's model_max_length does not apply
        all_ids, spans = token_spans(tokenizer, strand)
        pieces, plan = window_plan(all_ids, max_tokens - 2, overlap_tokens)
        show_progress = len(pieces) > 10 * batch_size if progress is None else progress
        cls_vectors, token_vectors = _encode(model, tokenizer, pieces, batch_size, show_progress, layer)

        pooled, per_token = [], []
        for i, entries in enumerate(plan):
            tokens = torch.cat(kept_parts(entries, token_vectors))  # (n, H)
            first_cls = cls_vectors[entries[0][0]]  # what a sequence of no tokens pools to
            if pooling == "none":
                vectors = tokens.float().cpu().numpy() if return_tensors == "np" else tokens
                per_token.append(TokenEmbeddings(vectors, spans[i]))
            elif pooling == "cls":
                pooled.append(torch.stack([cls_vectors[p] for p, *_ in entries]).mean(0))
            elif pooling == "max":
                pooled.append(tokens.max(0).values if len(tokens) else first_cls)
            else:
                pooled.append(tokens.mean(0) if len(tokens) else first_cls)
        if pooling == "none":
            return per_token
        stacked = torch.stack(pooled)  # (n_sequences, hidden)
        return stacked.float().cpu().numpy() if return_tensors == "np" else stacked

    if rc_average:  # the pooled vectors of both strands, averaged
        return (embed_strand(sequences) + embed_strand([reverse_complement(s.upper()) for s in sequences])) / 2
    return embed_strand(sequences)
