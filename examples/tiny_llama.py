"""Build a tiny random-weight Llama (safetensors + a tokenizer trained here) for vLLM,
plus its reference inputs (prompts and sampling parameters).

    python examples/tiny_llama.py OUT      # OUT/model, OUT/reference-inputs/prompts.json
    python examples/tiny_llama.py OUT --context 128   # a model with 128 positions

Nothing is downloaded: the tokenizer is trained on a few sentences and the weights are
drawn from a fixed seed. head_dim is 64: vLLM's CPU attention rejects head_dim 16.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

CORPUS = [
    "validators must run bit identical inference on every node",
    "a registry pins models by hash and refuses what it cannot verify",
    "the trust score of an account is computed from its history",
    "reproducible builds and reproducible inference keep a chain alive",
    "workers pull each candidate by hash and attest what they observed",
] * 20
PROMPTS = [
    "validators must run",
    "a registry pins models",
    "the trust score of",
]


def build(out: Path, seed: int = 0, context: int = 256) -> None:
    model_dir = out / "model"
    model_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.BpeTrainer(
        vocab_size=512, special_tokens=["<unk>", "<s>", "</s>"], seed=seed
    )
    tokenizer.train_from_iterator(CORPUS, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, unk_token="<unk>", bos_token="<s>", eos_token="</s>"
    )
    fast.save_pretrained(model_dir)
    config = LlamaConfig(
        vocab_size=512,
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=context,
        bos_token_id=1,
        eos_token_id=2,
        torch_dtype="float32",
    )
    torch.manual_seed(seed)
    LlamaForCausalLM(config).to(torch.float32).save_pretrained(model_dir, safe_serialization=True)
    inputs = out / "reference-inputs"
    inputs.mkdir(parents=True, exist_ok=True)
    reference = {"prompts": PROMPTS, "sampling": {"temperature": 0.0, "max_tokens": 16, "seed": 0}}
    (inputs / "prompts.json").write_text(json.dumps(reference, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--context", type=int, default=256, help="max_position_embeddings (default 256)"
    )
    args = parser.parse_args()
    build(args.out, args.seed, args.context)
    print(f"model: {args.out / 'model'}\nreference inputs: {args.out / 'reference-inputs'}")


if __name__ == "__main__":
    main()
