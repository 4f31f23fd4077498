"""DNABERT-2 building blocks in plain torch: embeddings, attention block, GeGLU MLP, post-LN layer, encoder.

Lives here: nn.Modules whose parameter names match the original checkpoint
(`embeddings.*`, `encoder.layer.N.attention.self.Wqkv`, `...attention.output.{dense,LayerNorm}`,
`...mlp.{gated_layers,wo,layernorm}`). Everything after the embeddings runs on the packed layout
`(total_tokens, hidden)`: feed-forward and LayerNorm never see padding.
Not here: attention math (bert_attention.py), padding bookkeeping (bert_padding.py), transformers
glue, heads and outputs (modeling_bert.py).
"""

from functools import partial

import torch
import torch.nn as nn
import torch.utils.checkpoint

from .bert_attention import alibi_slopes_tensor, varlen_attention
from .bert_padding import PackedBatch
from .configuration_bert import BertConfig

_ACTIVATIONS = {
    "gelu": nn.GELU,
    "gelu_new": partial(nn.GELU, approximate="tanh"),
    "gelu_pytorch_tanh": partial(nn.GELU, approximate="tanh"),
    "relu": nn.ReLU,
    "silu": nn.SiLU,
}


def activation(name: str) -> nn.Module:
    if name not in _ACTIVATIONS:
        raise ValueError(f"hidden_act={name!r} is not supported; expected one of {sorted(_ACTIVATIONS)}")
    return _ACTIVATIONS[name]()


class BertEmbeddings(nn.Module):
    """Word + token-type embeddings, then LayerNorm and dropout. No position embeddings (ALiBi)."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
    ) -> torch.Tensor:
        """input_ids / token_type_ids: (...,) ; inputs_embeds: (..., hidden) -> (..., hidden)"""
        if inputs_embeds is None:
            inputs_embeds = self.word_embeddings(input_ids)
        if token_type_ids is None:
            token_type_ids = torch.zeros(inputs_embeds.shape[:-1], dtype=torch.long, device=inputs_embeds.device)
        embeddings = inputs_embeds + self.token_type_embeddings(token_type_ids)
        return self.dropout(self.LayerNorm(embeddings))


class BertSelfAttention(nn.Module):
    """Fused Wqkv projection and attention on the packed layout."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.dropout_p = config.attention_probs_dropout_prob
        # Output rows ordered (t h d): all of q, then k, then v, each split into heads.
        self.Wqkv = nn.Linear(config.hidden_size, 3 * config.hidden_size)

    def forward(self, hidden_states: torch.Tensor, packed: PackedBatch, backend: str) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(total, hidden) -> (total, hidden), probs (batch, heads, L, L) or None"""
        qkv = self.Wqkv(hidden_states).view(-1, 3, self.num_heads, self.head_dim)  # (total, 3, heads, head_dim)
        slopes = alibi_slopes_tensor(self.num_heads, hidden_states.device)
        out, probs = varlen_attention(
            backend, qkv, packed, slopes, self.head_dim**-0.5, self.dropout_p if self.training else 0.0
        )
        return out.flatten(1), probs  # (total, hidden)


class BertSelfOutput(nn.Module):
    """Output projection, dropout, residual and post-LayerNorm."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:  # (total, hidden) each
        return self.LayerNorm(self.dropout(self.dense(hidden_states)) + residual)


class BertAttention(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.self = BertSelfAttention(config)
        self.output = BertSelfOutput(config)

    def forward(self, hidden_states: torch.Tensor, packed: PackedBatch, backend: str) -> tuple[torch.Tensor, torch.Tensor | None]:
        attended, probs = self.self(hidden_states, packed, backend)
        return self.output(attended, hidden_states), probs


class BertGatedMLP(nn.Module):
    """GeGLU feed-forward: GELU(x W1) * (x W2) -> dropout -> wo -> residual LayerNorm.

    `gated_layers` holds W1 (rows [:intermediate], through GELU) and W2 (rows [intermediate:],
    the linear gate) in one matrix with no bias, as in the original checkpoint.
    """

    def __init__(self, config: BertConfig):
        super().__init__()
        self.intermediate_size = config.intermediate_size
        self.gated_layers = nn.Linear(config.hidden_size, 2 * config.intermediate_size, bias=False)
        self.act = nn.GELU()  # exact GELU in the original, whatever hidden_act says
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.wo = nn.Linear(config.intermediate_size, config.hidden_size)
        self.layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:  # (total, hidden) -> (total, hidden)
        gated, gate = self.gated_layers(hidden_states).split(self.intermediate_size, dim=-1)  # (total, I) each
        activated = self.act(gated)
        if torch.is_grad_enabled() and activated.requires_grad:
            activated = activated * gate
        else:
            activated.mul_(gate)  # inference: reuse the buffer (the product is memory-bound)
        return self.layernorm(self.wo(self.dropout(activated)) + hidden_states)


class BertLayer(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.attention = BertAttention(config)
        self.mlp = BertGatedMLP(config)

    def forward(self, hidden_states: torch.Tensor, packed: PackedBatch, backend: str) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(total, hidden) -> (total, hidden), probs or None"""
        hidden_states, probs = self.attention(hidden_states, packed, backend)
        return self.mlp(hidden_states), probs


class BertEncoder(nn.Module):
    """The stack of layers on the packed layout.

    Gradient checkpointing: transformers' `gradient_checkpointing_enable()` sets
    `gradient_checkpointing` and `_gradient_checkpointing_func` on this module.
    """

    gradient_checkpointing = False

    def __init__(self, config: BertConfig):
        super().__init__()
        self.layer = nn.ModuleList([BertLayer(config) for _ in range(config.num_hidden_layers)])
        self._gradient_checkpointing_func = partial(torch.utils.checkpoint.checkpoint, use_reentrant=False)

    def forward(
        self, hidden_states: torch.Tensor, packed: PackedBatch, backend: str, keep_all_layers: bool = False
    ) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
        """(total, hidden) -> (final (total, hidden), per-layer outputs, per-layer probs)

        The per-layer outputs are collected only with keep_all_layers; probs only from `eager`.
        """
        all_layers, all_probs = [], []
        for layer in self.layer:
            if self.gradient_checkpointing and self.training:
                hidden_states, probs = self._gradient_checkpointing_func(
                    layer.__call__, hidden_states, packed, backend
                )
            else:
                hidden_states, probs = layer(hidden_states, packed, backend)
            if keep_all_layers:
                all_layers.append(hidden_states)
            if probs is not None:
                all_probs.append(probs)
        return hidden_states, all_layers, all_probs
