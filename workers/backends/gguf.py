"""Loading GGUF files with transformers: as dense float weights, for the backend and for conversion."""

from __future__ import annotations


def gguf_arguments(filename: str) -> dict:
    """`from_pretrained` arguments that load a GGUF file dequantised (newer transformers keep GGUF
    blocks unless told)."""
    try:
        from transformers import GgufConfig
    except ImportError:  # older transformers always dequantise
        return {"gguf_file": filename}
    return {"gguf_file": filename, "quantization_config": GgufConfig(gguf_file=filename, dequantize=True)}
