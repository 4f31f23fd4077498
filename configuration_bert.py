"""Configuration of the DNABERT-2 encoder (`BertConfig`, model_type "dnabert2").

Lives here: the config class and the validation of its fields. It accepts every field of the
original `zhihan1996/DNABERT-2-117M` config.json unchanged.
Not here: any model code (see bert_layers.py / modeling_bert.py).

Fields of the original that this implementation reads:
    vocab_size, hidden_size, num_hidden_layers, num_attention_heads, intermediate_size,
    hidden_act (MLM head transform), hidden_dropout_prob, attention_probs_dropout_prob,
    type_vocab_size, layer_norm_eps, initializer_range, classifier_dropout.
Fields of the original that are accepted when read and then dropped (never stored, never written),
because they have no effect: ALiBi needs no position table and the bias is built on the fly for
any length, so there is no maximum length; an encoder has no cache:
    alibi_starting_size, max_position_embeddings, position_embedding_type, use_cache.
Fields added by this implementation:
    attn_implementation  "sdpa" (default), "eager" or "triton"; the same name that
                         `from_pretrained(..., attn_implementation=...)` takes.
    classifier_pooling   "pooler" ([CLS] -> dense -> tanh, the original) or "mean"
                         (masked mean of the last hidden state) for sequence classification.
"""

from transformers import PretrainedConfig

ATTENTION_BACKENDS = ("eager", "sdpa", "triton")
CLASSIFIER_POOLINGS = ("pooler", "mean")

# Fields of the original config that this model ignores: read without error, never written.
IGNORED_ORIGINAL_FIELDS = ("alibi_starting_size", "max_position_embeddings", "position_embedding_type", "use_cache")

# The id of [PAD] in the DNABERT-2 vocabulary (the five special tokens and their ids: dna_tokenizer.SPECIAL_TOKENS).
PAD_TOKEN_ID = 3

# Named model sizes (the fields that differ from the defaults), used by pretrain.py and the benchmarks.
PRESETS = {
    # The published DNABERT-2-117M hyperparameters.
    "dnabert2-117m": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
    # A demo-scale model that trains on 2 CPU cores in about an hour (~5M parameters).
    "dnabert2-small": dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024),
    # Model size at fixed compute (BENCHMARKS, "Does our pretraining help?"): the same non-embedding
    # parameters as dnabert2-small to within 2.1% (deep 4.18M, wide 4.29M, small 4.27M), so equal steps are
    # equal compute; head dim 64 as in every other preset.
    "dnabert2-small-deep": dict(hidden_size=192, num_hidden_layers=8, num_attention_heads=3, intermediate_size=640),
    "dnabert2-small-wide": dict(hidden_size=384, num_hidden_layers=2, num_attention_heads=6, intermediate_size=1280),
    # For tests and smoke runs only.
    "dnabert2-tiny": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128),
}

_AUTO_MAP = {
    "AutoConfig": "configuration_bert.BertConfig",
    "AutoModel": "modeling_bert.BertModel",
    "AutoModelForMaskedLM": "modeling_bert.BertForMaskedLM",
    "AutoModelForSequenceClassification": "modeling_bert.BertForSequenceClassification",
    "AutoModelForTokenClassification": "modeling_bert.BertForTokenClassification",
}


class BertConfig(PretrainedConfig):
    model_type = "dnabert2"

    def __init__(
        self,
        vocab_size=4096,
        hidden_size=768,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=3072,
        hidden_act="gelu",
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.0,
        type_vocab_size=2,
        layer_norm_eps=1e-12,
        initializer_range=0.02,
        classifier_dropout=None,
        classifier_pooling="pooler",
        pad_token_id=PAD_TOKEN_ID,
        tie_word_embeddings=True,
        attn_implementation=None,
        auto_map=None,
        **kwargs,
    ):
        if hidden_size % num_attention_heads != 0:
            raise ValueError(
                f"BertConfig: hidden_size ({hidden_size}) must be a multiple of "
                f"num_attention_heads ({num_attention_heads})."
            )
        if classifier_pooling not in CLASSIFIER_POOLINGS:
            raise ValueError(
                f"BertConfig: classifier_pooling={classifier_pooling!r}; expected one of {CLASSIFIER_POOLINGS}."
            )
        if attn_implementation is not None and attn_implementation not in ATTENTION_BACKENDS:
            raise ValueError(
                f"BertConfig: attn_implementation={attn_implementation!r}; expected one of {ATTENTION_BACKENDS}."
            )
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.hidden_act = hidden_act
        self.hidden_dropout_prob = hidden_dropout_prob
        self.attention_probs_dropout_prob = attention_probs_dropout_prob
        self.type_vocab_size = type_vocab_size
        self.layer_norm_eps = layer_norm_eps
        self.initializer_range = initializer_range
        self.classifier_dropout = classifier_dropout
        self.classifier_pooling = classifier_pooling
        for name in IGNORED_ORIGINAL_FIELDS:  # no effect here (module docstring): not kept, so never written
            kwargs.pop(name, None)
        # Always our module layout: the original config names its classes in bert_layers.py, but
        # these classes live in modeling_bert.py, so an inherited auto_map would not load.
        del auto_map
        self.auto_map = dict(_AUTO_MAP)
        kwargs.pop("gradient_checkpointing", None)  # a field of the original; use gradient_checkpointing_enable()
        # The MLM decoder shares the word-embedding matrix, as in the original.
        self.tie_word_embeddings = tie_word_embeddings
        super().__init__(
            pad_token_id=pad_token_id,
            tie_word_embeddings=tie_word_embeddings,
            attn_implementation=attn_implementation,
            **kwargs,
        )
