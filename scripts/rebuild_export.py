#!/usr/bin/env python3
"""Rebuild a student's export from a run's small best checkpoints, off the GPU machine.

A device call returns at most 16 MiB per file, so scripts/gpu_repro.sh brings back each run's
stage-1 and stage-2 best trainable tensors (distill/best, lora/best: well under 1 MB each) and its
export's config.json instead of the 25 MB export. This writes the same export `lawcat distill`
writes (model/export.cpp): the teacher's weights with the LoRA deltas merged in fp32,
W + (alpha / rank) * B @ A, then cast to the export dtype; the LAWCAT tensors in fp32; the
teacher's tokenizer files; the run's export config.json; for a LAWCAT student the Python modeling
files (python/lawcat_hf), so transformers loads it with trust_remote_code.

  python3 scripts/rebuild_export.py --teacher ../shared/data/models/retriever13m \
      --run runs/repro/students/lawcat --out runs/repro/students/lawcat/export
"""
import argparse
import json
import os
import shutil

import torch
from safetensors import safe_open
from safetensors.torch import save_file


def tensors(path):
    with safe_open(path, "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}


def lora_alpha_of(run):
    """lora.lora_alpha of the run's resolved config.yaml (lawcat writes every key there)."""
    import yaml
    path = os.path.join(run, "config.yaml")
    with open(path) as f:
        cfg = yaml.safe_load(f)
    try:
        return float(cfg["lora"]["lora_alpha"])
    except (KeyError, TypeError):
        raise SystemExit(f"{path}: no lora.lora_alpha (pass --lora-alpha)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--teacher", required=True)
    ap.add_argument("--run", required=True, help="run folder with distill/best, lora/best and export/config.json")
    ap.add_argument("--out", required=True)
    ap.add_argument("--lora-alpha", type=float, help="default: lora.lora_alpha of the run's config.yaml")
    a = ap.parse_args()
    if a.lora_alpha is None:
        a.lora_alpha = lora_alpha_of(a.run)
    config_src = os.path.join(a.run, "export", "config.json")
    cfg = json.load(open(config_src))
    dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16}.get(cfg.get("torch_dtype"), torch.float32)
    weights = {}
    index = os.path.join(a.teacher, "model.safetensors.index.json")
    files = sorted(set(json.load(open(index))["weight_map"].values())) if os.path.exists(index) else ["model.safetensors"]
    for f in files:
        weights.update(tensors(os.path.join(a.teacher, f)))
    lora_file = os.path.join(a.run, "lora", "best", "trainable.safetensors")
    if os.path.exists(lora_file):
        lora = tensors(lora_file)
        rank = None
        for k, A in lora.items():
            if not k.endswith(".lora_A.weight"):
                continue
            base = k[: -len(".lora_A.weight")]
            B = lora[base + ".lora_B.weight"]
            rank = A.shape[0]
            w = weights[base + ".weight"].float() + (B.float() @ A.float()) * (a.lora_alpha / rank)
            weights[base + ".weight"] = w.to(dtype)
    for k, v in tensors(os.path.join(a.run, "distill", "best", "trainable.safetensors")).items():
        weights[k] = v.float()
    # stage 2 with lora.train_lawcat=true also trained the LAWCAT tensors: its values win
    for k, v in (lora.items() if os.path.exists(lora_file) else []):
        if ".lora_A." not in k and ".lora_B." not in k:
            weights[k] = v.float()
    weights = {k: (v.to(dtype) if ".self_attn." not in k or k.endswith("_proj.weight") else v).contiguous()
               for k, v in weights.items()}
    os.makedirs(a.out, exist_ok=True)
    save_file(weights, os.path.join(a.out, "model.safetensors"))
    # the files model/checkpoint.cpp's copy_tokenizer_files copies
    for f in ("tokenizer.json", "tokenizer.model", "tokenizer.bin", "tokenizer_config.json",
              "special_tokens_map.json", "generation_config.json"):
        if os.path.exists(os.path.join(a.teacher, f)):
            shutil.copy(os.path.join(a.teacher, f), a.out)
    # a LAWCAT export carries its Python modeling files (auto_map), as model/export.cpp writes them
    if "auto_map" in cfg:
        here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python", "lawcat_hf")
        for f in ("modeling_lawcat.py", "configuration_lawcat.py"):
            shutil.copy(os.path.join(here, f), a.out)
    config_out = os.path.join(a.out, "config.json")
    # the device's rebuild stage writes into the run's own export folder, where it already is
    if not (os.path.exists(config_out) and os.path.samefile(config_src, config_out)):
        shutil.copy(config_src, config_out)
    print(f"rebuilt {a.out}: {len(weights)} tensors ({dtype})")


if __name__ == "__main__":
    main()
