"""Published LLaMA shapes by name, for planning a run on a model whose weights are not at hand.

The 7B and 13B entries are LLaMA-2's ``config.json`` (meta-llama/Llama-2-7b-hf, -13b-hf); ``llama-1b``
is TinyLlama-1.1B's (grouped-query attention, 4 key/value heads), the size the GPU check trains;
``openllama-3b`` is openlm-research/open_llama_3b's (the 7B and 13B OpenLLaMA share LLaMA's shapes).
"""

from __future__ import annotations

from emergence.errors import UserError
from emergence.models.config import LlamaConfig

_LLAMA2 = {"vocab_size": 32000, "max_position_embeddings": 4096, "rms_norm_eps": 1e-5}

PRESETS: dict[str, LlamaConfig] = {
    "llama-1b": LlamaConfig(
        vocab_size=32000, hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
        num_attention_heads=32, num_key_value_heads=4, max_position_embeddings=2048, rms_norm_eps=1e-5,
    ),
    "llama-7b": LlamaConfig(
        hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
        num_key_value_heads=32, **_LLAMA2,
    ),
    "llama-13b": LlamaConfig(
        hidden_size=5120, intermediate_size=13824, num_hidden_layers=40, num_attention_heads=40,
        num_key_value_heads=40, **_LLAMA2,
    ),
    "openllama-3b": LlamaConfig(
        vocab_size=32000, hidden_size=3200, intermediate_size=8640, num_hidden_layers=26,
        num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=2048, rms_norm_eps=1e-6,
    ),
}  # fmt: skip


def model_config(reference: str) -> LlamaConfig:
    """The architecture of a preset, an HF directory (its config.json) or a GGUF file / alias (its
    metadata): no weights are read."""
    from pathlib import Path

    if reference in PRESETS:
        return PRESETS[reference]
    path = Path(reference).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise UserError(f"{path}: no config.json in this model directory")
        from emergence.fileio import read_json_object
        from emergence.models.families import config_from_hf

        file = path / "config.json"
        return config_from_hf(read_json_object(file, "model config"), str(file))
    from emergence.models.registry import ALIASES, resolve

    if reference in ALIASES or path.suffix == ".gguf":
        from emergence.models.gguf_loader import load_gguf

        return load_gguf(resolve(reference)[1])[0]  # its tensors are read only when asked for
    raise UserError(
        f"{reference}: not a model preset ({', '.join(PRESETS)}), model directory, .gguf file or alias"
    )
