#!/usr/bin/env python3
"""Logits of Hugging Face transformers' LlamaForCausalLM (eager attention,
float32) for lawcat's tests: the independent reference for src/model/llama.

  python hf_logits.py OUT.safetensors DIR1 DIR2 ...

Reads DIR/ids.json ([[ids...], ...], equal lengths) from each model directory
and writes the logits [B, T, V] as tensor "logits.<i>" (i = position of DIR
in the argument list) into OUT.safetensors.
"""
import json
import sys

import torch
from safetensors.torch import save_file
from transformers import LlamaForCausalLM


def main():
    out, dirs = sys.argv[1], sys.argv[2:]
    torch.set_grad_enabled(False)
    torch.set_num_threads(1)
    result = {}
    for i, d in enumerate(dirs):
        model = LlamaForCausalLM.from_pretrained(d, torch_dtype=torch.float32, attn_implementation="eager")
        model.eval()
        ids = torch.tensor(json.load(open(f"{d}/ids.json")), dtype=torch.long)
        result[f"logits.{i}"] = model(ids).logits.float().contiguous()
    save_file(result, out)


if __name__ == "__main__":
    main()
