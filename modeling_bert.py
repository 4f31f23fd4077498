"""transformers glue for DNABERT-2: the PreTrainedModel classes, task heads and ModelOutputs.

Lives here: `BertModel`, `BertForMaskedLM`, `BertForSequenceClassification`,
`BertForTokenClassification` (both on `_BertClassifierModel`: encoder, dropout, classifier), the
pooler and MLM head, weight init, attention-backend selection and the `triton` name registration.
Not here: the encoder blocks (bert_layers.py) or attention math (bert_attention.py).

Works on transformers 5.x (primary) and the latest 4.x.
"""

import torch
import torch.nn as nn
import transformers
from transformers import AttentionInterface, PreTrainedModel
from transformers.modeling_outputs import (
    BaseModelOutputWithPooling, MaskedLMOutput, SequenceClassifierOutput, TokenClassifierOutput,
)
from transformers.utils import logging

from .bert_attention import varlen_attention  # noqa: F401  (see below)
from .bert_layers import BertEmbeddings, BertEncoder, activation
from .bert_padding import PackedBatch
from .configuration_bert import BertConfig
from .embedding import embed
from .dna_alphabet import reverse_complement  # noqa: F401  (see below)
from .flash_attn_triton import flash_attn_varlen_func  # noqa: F401  (see below)

# transformers 4.x copies only the files that a local remote-code file imports *directly*
# (`from .module import name` lines), so this file imports from every module of the model,
# including those only bert_layers.py and embedding.py use. The model code never imports
# genome_io.py (file reading), so a saved checkpoint ships model code only.

try:  # transformers 5: init functions that skip tensors already loaded from a checkpoint
    from transformers import initialization as init
except ImportError:  # transformers 4
    from torch.nn import init

logger = logging.get_logger(__name__)

TRANSFORMERS_V5 = int(transformers.__version__.split(".")[0]) >= 5
IGNORE_INDEX = -100  # label value of positions that carry no MLM target


def _triton_through_transformers(*args, **kwargs):
    raise NotImplementedError(
        "'triton' is DNABERT-2's own attention backend: the model dispatches it itself on the packed "
        "layout with in-kernel ALiBi. It cannot serve other architectures through AttentionInterface."
    )


# transformers only accepts attn_implementation names it knows; make "triton" one of them.
if "triton" not in AttentionInterface._global_mapping:
    AttentionInterface.register("triton", _triton_through_transformers)


class BertPreTrainedModel(PreTrainedModel):
    config_class = BertConfig
    base_model_prefix = "bert"
    supports_gradient_checkpointing = True
    _no_split_modules = ["BertLayer"]
    _supports_sdpa = True
    _supports_flash_attn = False
    _supports_flex_attn = False

    def _init_weights(self, module):
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, mean=0.0, std=std)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)

    def _as_requested(self, output, return_dict):
        """The ModelOutput, or its tuple form with return_dict=False (config.return_dict by default)."""
        return_dict = self.config.return_dict if return_dict is None else return_dict
        return output if return_dict else output.to_tuple()

    def _attention_backend(self, output_attentions: bool) -> str:
        backend = self.config._attn_implementation or "sdpa"
        if output_attentions and backend != "eager":
            logger.warning_once(
                f"output_attentions=True needs attention probabilities, which only the 'eager' backend "
                f"returns; using 'eager' instead of '{backend}' for these calls."
            )
            return "eager"
        return backend


class BertPooler(nn.Module):
    """The original pooler: [CLS] hidden state -> dense -> tanh."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.activation = nn.Tanh()

    def forward(self, cls_hidden: torch.Tensor) -> torch.Tensor:  # (batch, hidden) -> (batch, hidden)
        return self.activation(self.dense(cls_hidden))


class BertModel(BertPreTrainedModel):
    """The encoder. Returns `BaseModelOutputWithPooling`; `last_hidden_state` is 0 at padding."""

    def __init__(self, config: BertConfig, add_pooling_layer: bool = True):
        super().__init__(config)
        self.embeddings = BertEmbeddings(config)
        self.encoder = BertEncoder(config)
        self.pooler = BertPooler(config) if add_pooling_layer else None
        self.post_init()

    def get_input_embeddings(self):
        return self.embeddings.word_embeddings

    def set_input_embeddings(self, value):
        self.embeddings.word_embeddings = value

    def embed(self, tokenizer, sequences, **kwargs):
        """Embeddings of DNA strings; see embedding.embed for pooling, windows and strand averaging."""
        return embed(self, tokenizer, sequences, **kwargs)

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> BaseModelOutputWithPooling | tuple[torch.Tensor, ...]:
        """input_ids, attention_mask, token_type_ids: (batch, L); inputs_embeds: (batch, L, hidden)."""
        packed, encoded, all_layers, all_probs = self._encode(
            input_ids, attention_mask, token_type_ids, inputs_embeds, output_attentions, output_hidden_states
        )
        last_hidden_state = packed.pad(encoded)  # (batch, L, hidden)
        pooled = None
        if self.pooler is not None:
            pooled = self.pooler(encoded.index_select(0, packed.cu_seqlens[:-1].long()))  # first token of each row
        hidden_states = tuple(packed.pad(h) for h in all_layers) if all_layers else None
        output = BaseModelOutputWithPooling(
            last_hidden_state=last_hidden_state,
            pooler_output=pooled,
            hidden_states=hidden_states,
            attentions=tuple(all_probs) if all_probs else None,
        )
        return self._as_requested(output, return_dict)

    def _encode(
        self,
        input_ids: torch.LongTensor | None,
        attention_mask: torch.Tensor | None,
        token_type_ids: torch.LongTensor | None,
        inputs_embeds: torch.FloatTensor | None,
        output_attentions: bool | None,
        output_hidden_states: bool | None,
    ) -> tuple[PackedBatch, torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
        """Run embeddings and encoder on the packed layout.

        Returns (packed, final (total, hidden), [embeddings, layer outputs...] if requested, probs).
        """
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of input_ids or inputs_embeds.")
        shape = input_ids.shape if input_ids is not None else inputs_embeds.shape[:-1]
        device = input_ids.device if input_ids is not None else inputs_embeds.device
        if len(shape) != 2:
            raise ValueError(f"Expected input of shape (batch, seqlen), got {tuple(shape)}.")
        if attention_mask is None:
            attention_mask = torch.ones(shape, dtype=torch.bool, device=device)
        packed = PackedBatch.from_attention_mask(attention_mask)
        if 0 in packed.seqlens:
            raise ValueError(
                f"attention_mask row {packed.seqlens.index(0)} has no real tokens; every sequence needs at "
                "least one (the tokenizer always adds [CLS] and [SEP])."
            )
        output_attentions = self.config.output_attentions if output_attentions is None else output_attentions
        output_hidden_states = (
            self.config.output_hidden_states if output_hidden_states is None else output_hidden_states
        )
        embedded = self.embeddings(
            input_ids=None if input_ids is None else packed.unpad(input_ids),
            token_type_ids=None if token_type_ids is None else packed.unpad(token_type_ids),
            inputs_embeds=None if inputs_embeds is None else packed.unpad(inputs_embeds),
        )  # (total, hidden)
        encoded, layers, probs = self.encoder(
            embedded, packed, self._attention_backend(output_attentions), keep_all_layers=output_hidden_states
        )
        all_layers = [embedded, *layers] if output_hidden_states else []
        return packed, encoded, all_layers, probs


class BertPredictionHeadTransform(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.transform_act_fn = activation(config.hidden_act)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:  # (..., hidden) -> (..., hidden)
        return self.LayerNorm(self.transform_act_fn(self.dense(hidden_states)))


class BertLMPredictionHead(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.transform = BertPredictionHeadTransform(config)
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size)  # weight tied to the word embeddings

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:  # (..., hidden) -> (..., vocab)
        return self.decoder(self.transform(hidden_states))


class BertOnlyMLMHead(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.predictions = BertLMPredictionHead(config)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:  # (..., hidden) -> (..., vocab)
        return self.predictions(hidden_states)


class BertForMaskedLM(BertPreTrainedModel):
    """Encoder + MLM head.

    Without labels, `logits` is (batch, L, vocab) (0 at padding). With labels (-100 = no target),
    the head runs only on labelled positions and `logits` is (num_labelled, vocab), in row-major
    order of the labelled positions, so training never materialises (batch, L, vocab).
    """

    if TRANSFORMERS_V5:
        _tied_weights_keys = {"cls.predictions.decoder.weight": "bert.embeddings.word_embeddings.weight"}
    else:
        _tied_weights_keys = ["cls.predictions.decoder.weight"]

    def __init__(self, config: BertConfig):
        super().__init__(config)
        self.bert = BertModel(config, add_pooling_layer=False)
        self.cls = BertOnlyMLMHead(config)
        self.post_init()

    def get_output_embeddings(self):
        return self.cls.predictions.decoder

    def set_output_embeddings(self, new_embeddings):
        self.cls.predictions.decoder = new_embeddings

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        labels: torch.LongTensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> MaskedLMOutput | tuple[torch.Tensor, ...]:
        packed, encoded, all_layers, all_probs = self.bert._encode(
            input_ids, attention_mask, token_type_ids, inputs_embeds, output_attentions, output_hidden_states
        )
        loss = None
        if labels is None:
            logits = packed.pad(self.cls(encoded))  # (batch, L, vocab)
        else:
            flat_labels = labels.flatten()  # (batch * L,)
            target_rows = torch.nonzero(flat_labels != IGNORE_INDEX, as_tuple=False).flatten()
            # Labels are given in the padded layout; map each labelled position to its packed row.
            packed_row = torch.full_like(flat_labels, -1)
            packed_row[packed.indices] = torch.arange(packed.total_tokens, device=labels.device)
            rows = packed_row[target_rows]
            if bool((rows < 0).any()):
                raise ValueError("labels mark a padding position (attention_mask == 0) as an MLM target.")
            logits = self.cls(encoded.index_select(0, rows))  # (num_labelled, vocab)
            loss = nn.functional.cross_entropy(logits.float(), flat_labels[target_rows])
        output = MaskedLMOutput(
            loss=loss,
            logits=logits,
            hidden_states=tuple(packed.pad(h) for h in all_layers) if all_layers else None,
            attentions=tuple(all_probs) if all_probs else None,
        )
        return self._as_requested(output, return_dict)


class _BertClassifierModel(BertPreTrainedModel):
    """What the two classification heads share: the encoder (`bert`), dropout and a linear
    `classifier` (state-dict keys `bert.*` and `classifier.*`, as in the original), and the encoder call."""

    def __init__(self, config: BertConfig, add_pooling_layer: bool):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.bert = BertModel(config, add_pooling_layer=add_pooling_layer)
        dropout = config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def _encoded(
        self,
        input_ids: torch.LongTensor | None,
        attention_mask: torch.Tensor | None,
        token_type_ids: torch.LongTensor | None,
        inputs_embeds: torch.FloatTensor | None,
        output_attentions: bool | None,
        output_hidden_states: bool | None,
    ) -> BaseModelOutputWithPooling:
        """The encoder's output (always as a ModelOutput)."""
        return self.bert(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            inputs_embeds=inputs_embeds,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )

    def _logits(self, features: torch.Tensor) -> torch.Tensor:
        """(..., hidden) -> (..., num_labels): dropout, then the classifier."""
        return self.classifier(self.dropout(features))


class BertForSequenceClassification(_BertClassifierModel):
    """Encoder + pooling + linear classifier.

    config.classifier_pooling: "pooler" ([CLS] -> dense -> tanh, the original) or "mean" (masked
    mean of the last hidden state; this variant has no pooler weights).
    """

    def __init__(self, config: BertConfig):
        super().__init__(config, add_pooling_layer=config.classifier_pooling == "pooler")

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        labels: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> SequenceClassifierOutput | tuple[torch.Tensor, ...]:
        """labels: (batch,) class ids, regression targets, or (batch, num_labels) multi-label
        targets; config.problem_type picks the loss, inferred from num_labels and dtype when unset."""
        outputs = self._encoded(input_ids, attention_mask, token_type_ids, inputs_embeds, output_attentions, output_hidden_states)
        if self.config.classifier_pooling == "pooler":
            pooled = outputs.pooler_output
        else:
            hidden = outputs.last_hidden_state  # (batch, L, hidden), 0 at padding
            if attention_mask is None:
                pooled = hidden.mean(dim=1)
            else:
                weights = attention_mask.to(hidden.dtype).unsqueeze(-1)  # (batch, L, 1)
                pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1)
        logits = self._logits(pooled)  # (batch, num_labels)
        loss = self._loss(logits, labels) if labels is not None else None
        output = SequenceClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )
        return self._as_requested(output, return_dict)

    def _loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        problem_type = self.config.problem_type
        if problem_type is None:
            if self.num_labels == 1:
                problem_type = "regression"
            elif labels.dtype in (torch.long, torch.int):
                problem_type = "single_label_classification"
            else:
                problem_type = "multi_label_classification"
        if problem_type == "regression":  # one or several targets
            return nn.functional.mse_loss(logits.float().view(-1), labels.float().reshape(-1))
        if problem_type == "single_label_classification":
            return nn.functional.cross_entropy(logits.float().view(-1, self.num_labels), labels.view(-1))
        return nn.functional.binary_cross_entropy_with_logits(logits.float(), labels.float())


class BertForTokenClassification(_BertClassifierModel):
    """Encoder + linear classifier on every token (per-token tasks; per_base.py maps them to bases).

    `logits` is (batch, L, num_labels), 0 at padding. Labels (batch, L) use -100 for positions
    without a target ([CLS], [SEP], padding).
    """

    def __init__(self, config: BertConfig):
        super().__init__(config, add_pooling_layer=False)

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        labels: torch.LongTensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> TokenClassifierOutput | tuple[torch.Tensor, ...]:
        outputs = self._encoded(input_ids, attention_mask, token_type_ids, inputs_embeds, output_attentions, output_hidden_states)
        logits = self._logits(outputs.last_hidden_state)  # (batch, L, num_labels)
        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(
                logits.float().view(-1, self.num_labels), labels.reshape(-1), ignore_index=IGNORE_INDEX
            )
        output = TokenClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )
        return self._as_requested(output, return_dict)


# save_pretrained copies these files and writes their auto_map (the config's own auto_map lists all five).
BertConfig.register_for_auto_class()
BertModel.register_for_auto_class("AutoModel")
BertForMaskedLM.register_for_auto_class("AutoModelForMaskedLM")
BertForSequenceClassification.register_for_auto_class("AutoModelForSequenceClassification")
BertForTokenClassification.register_for_auto_class("AutoModelForTokenClassification")
