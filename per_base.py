"""Per-base labels <-> per-token labels, through the token spans of `embedding.token_spans`.

Lives here: the rule that gives each BPE token one label from the bases it covers, and the
mapping of per-token predictions back to one value per base.
Not here: tokenization (embedding.token_spans), the model head (modeling_bert), metrics
(task_types.base_metrics).

Rule (token label = the LARGEST label among the bases it covers): for 0/1 labels a token is
positive when any of its bases is ("any positive"), so a rare positive site (one base of a splice
site, a CpG inside a 6-bp token) is never lost to a token boundary; for several classes, class ids
should be ordered background-first. Mapping back, every base takes the prediction of the token that
covers it, so the resolution of a prediction is one token (about 5 bp on average).
"""

import numpy as np

from .modeling_bert import IGNORE_INDEX  # here also the label of [CLS], [SEP] and padding positions

__all__ = ["labels_to_tokens", "tokens_to_bases"]


def labels_to_tokens(base_labels: np.ndarray, spans: np.ndarray) -> np.ndarray:
    """(bases,) class ids and (tokens, 2) spans -> (tokens,) class ids (max over each span)."""
    out = np.empty(len(spans), dtype=np.int64)
    for t, (start, end) in enumerate(spans):
        if end <= start:
            raise ValueError(f"token {t} has an empty span ({start}, {end}); per-base tasks need plain DNA input")
        out[t] = base_labels[start:end].max()
    return out


def tokens_to_bases(token_values: np.ndarray, spans: np.ndarray, length: int) -> np.ndarray:
    """(tokens, ...) values -> (length, ...): each base takes the value of the token covering it.

    A base no token covers (the tokenizer drops whitespace) raises: per-base input must be plain DNA.
    """
    out = np.zeros((length, *token_values.shape[1:]), dtype=token_values.dtype)
    covered = np.zeros(length, dtype=bool)
    for value, (start, end) in zip(token_values, spans):
        out[start:end] = value
        covered[start:end] = True
    if not covered.all():
        raise ValueError(f"bases {np.flatnonzero(~covered)[:5].tolist()} are covered by no token (whitespace or truncation)")
    return out
