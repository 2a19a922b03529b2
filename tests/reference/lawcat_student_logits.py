#!/usr/bin/env python3
"""Logits and greedy tokens of exported LAWCAT students loaded the way a Python user loads them:
transformers.AutoModelForCausalLM.from_pretrained(dir, trust_remote_code=True), float32, through
the modeling_lawcat.py that the export wrote beside the weights (python/lawcat_hf/).

  python lawcat_student_logits.py OUT.safetensors DIR1 DIR2 ...

Reads DIR/ids.json ([[ids...], ...], equal lengths) and DIR/generate.json ({"prompt": [ids...],
"max_new_tokens": n}) from each directory; writes "logits.<i>" [B, T, V] and "generated.<i>" [n]
(greedy model.generate, no stop token) into OUT.safetensors (i = position of DIR).
"""
import json
import sys

import torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM


def main():
    out, dirs = sys.argv[1], sys.argv[2:]
    torch.set_grad_enabled(False)
    torch.set_num_threads(1)
    result = {}
    for i, d in enumerate(dirs):
        model = AutoModelForCausalLM.from_pretrained(d, trust_remote_code=True, dtype=torch.float32).eval()
        name = type(model).__name__
        if name != "LawcatForCausalLM":
            raise SystemExit(f"{d}: loaded as {name}, expected LawcatForCausalLM (config.json auto_map)")
        ids = torch.tensor(json.load(open(f"{d}/ids.json")), dtype=torch.long)
        result[f"logits.{i}"] = model(ids).logits.float().contiguous()
        gen = json.load(open(f"{d}/generate.json"))
        prompt = torch.tensor([gen["prompt"]], dtype=torch.long)
        model.generation_config.eos_token_id = None  # as lawcat's greedy_decode without stop ids
        model.generation_config.pad_token_id = 0
        tokens = model.generate(prompt, attention_mask=torch.ones_like(prompt), do_sample=False,
                                max_new_tokens=gen["max_new_tokens"])
        result[f"generated.{i}"] = tokens[0, prompt.shape[1]:].contiguous()
        print(f"{d}: {name}, logits {tuple(result[f'logits.{i}'].shape)}, generated {result[f'generated.{i}'].tolist()}")
    save_file(result, out)


if __name__ == "__main__":
    main()
