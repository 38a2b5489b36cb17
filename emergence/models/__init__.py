"""Models: the NNX LLaMA, its config, checkpoint loading (HF safetensors, GGUF), tokenizers, aliases."""
