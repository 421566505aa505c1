"""Tiny causal language models built from a config with random weights: real forward passes, no downloads.

`tiny:NAME` names one: the weights are seeded from NAME, so every process builds the same model.
Presets set the size; unknown names get the small shape. The tokenizer is a byte-level one built in
code (256 byte tokens and three specials), so any text can be encoded.
"""

from __future__ import annotations

import zlib

PRESETS: dict[str, dict[str, int]] = {
    "small": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4},
    "medium": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 4, "num_attention_heads": 4},
    # ~26M parameters: enough compute per query for CPU throughput measurements.
    "bench": {"hidden_size": 512, "intermediate_size": 1408, "num_hidden_layers": 8, "num_attention_heads": 8, "num_key_value_heads": 4, "initializer_range": 0.02},
    # The shape of Llama-3.1-8B (8.03B parameters), for throughput measurements on a GPU.
    "llama3-8b-shape": {
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "vocab_size": 128256,
        "rope_theta": 500000.0,
        "initializer_range": 0.02,
    },
}
SPECIALS = ("<pad>", "<s>", "</s>")
CONTEXT_TOKENS = 4096
# Random weights at the usual 0.02 scale give near-uniform next-token probabilities; a wider
# initialisation gives confident and unsure answers, so routing has something to decide.
INIT_STD = 0.6


def is_tiny(model: str) -> bool:
    return model.startswith("tiny:")


def build_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {token: i for i, token in enumerate(SPECIALS)}
    for char in sorted(alphabet):
        vocab[char] = len(vocab)
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="<pad>", bos_token="<s>", eos_token="</s>", model_max_length=CONTEXT_TOKENS
    )
    return tokenizer


def preset_for(name: str) -> dict:
    """`tiny:medium-b` is the medium shape with other weights; unknown names get the small shape."""
    if name in PRESETS:
        return PRESETS[name]
    return PRESETS.get(name.split("-")[0], PRESETS["small"])


def build_model(model: str, tokenizer, *, device=None, dtype=None):
    """A LlamaForCausalLM with seeded random weights for `tiny:NAME[-suffix]`, built on `device`."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    name = model.split(":", 1)[1]
    shape = {"vocab_size": len(tokenizer), "num_key_value_heads": 2, "initializer_range": INIT_STD, **preset_for(name)}
    config = LlamaConfig(
        max_position_embeddings=CONTEXT_TOKENS,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
        **shape,
    )
    generator_state = torch.random.get_rng_state()
    default_dtype = torch.get_default_dtype()
    torch.manual_seed(zlib.crc32(name.encode("utf-8")))
    try:
        if dtype is not None:
            torch.set_default_dtype(dtype)  # an 8B shape is built straight in bf16, on the GPU
        with torch.device(device or "cpu"):
            net = LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(default_dtype)
        torch.random.set_rng_state(generator_state)
    net.eval()
    return net
