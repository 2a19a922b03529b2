#!/usr/bin/env python3
"""Copy a LAWCAT export or checkpoint with its gate or feature map perturbed (not the paper's method).

The source is an export directory (model.safetensors) or a training checkpoint directory
(trainable.safetensors, e.g. <run>/distill/best): an edited distill checkpoint can then go
through stage 2 again (`lawcat distill <config> --stage lora`), so the LoRA adapters are
trained on top of the edit instead of before it.

  --gate-shift D     every gate bias + D. With log(alpha) = logsigmoid(W2 W1 x + b) / tau, a larger
                     b keeps every feature longer (a slow feature's memory -1/log(alpha) grows ~e^D).
  --feature-scale S  every feature map W_phi x S. phi(x) = [softmax(x W_phi), softmax(-x W_phi)] is
                     applied to q and k alike, so S > 1 sharpens both: phi(q).phi(k) moves towards
                     "same top feature or nothing", the needle's key stands out more from the filler.
  --layers 3,4       only these layers (default: all)
  --heads 3          --feature-scale only for these heads (default: all; W_phi is [heads, head_dim, f])

docs/results/NOTES.md uses it to ask what sets a student's retrieval horizon: how fast its gate
forgets, or how sharply its query matches the needle's key.

  python3 scripts/perturb_export.py runs/repro/students/tasks_only_phi128_w8/export /tmp/w8_plus1 --gate-shift 1
  python3 scripts/perturb_export.py runs/a/distill/best runs/b/distill/best --feature-scale 6 --layers 3 --heads 3
"""
import argparse
import os
import re
import shutil
import sys

from safetensors.torch import load_file, save_file


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("src", help="LAWCAT export directory (model.safetensors) or checkpoint directory (trainable.safetensors)")
    ap.add_argument("dst", help="output directory (a copy of src with the tensors changed)")
    ap.add_argument("--gate-shift", type=float, default=0.0)
    ap.add_argument("--feature-scale", type=float, default=1.0)
    ap.add_argument("--layers", default="", help="comma-separated layer indices (default: all)")
    ap.add_argument("--heads", default="", help="comma-separated head indices for --feature-scale (default: all)")
    a = ap.parse_args()
    if a.gate_shift == 0.0 and a.feature_scale == 1.0:
        ap.error("nothing to do: give --gate-shift and/or --feature-scale")
    if a.heads and a.feature_scale == 1.0:
        ap.error("--heads selects heads for --feature-scale, which is not given")

    def indices(text, what):
        try:
            out = {int(x) for x in text.split(",") if x.strip()}
        except ValueError:
            ap.error(f"--{what} {text!r}: comma-separated indices, e.g. 3 or 1,3")
        if any(i < 0 for i in out):
            ap.error(f"--{what} {text!r}: indices must be >= 0")
        return out

    layers = indices(a.layers, "layers")
    heads = sorted(indices(a.heads, "heads"))
    found = [f for f in ("model.safetensors", "trainable.safetensors") if os.path.isfile(os.path.join(a.src, f))]
    if not found:
        sys.exit(f"perturb_export: {a.src} has neither model.safetensors (an export) nor trainable.safetensors (a checkpoint)")
    if len(found) == 2:
        sys.exit(f"perturb_export: {a.src} has both model.safetensors and trainable.safetensors: which one to edit is unclear")
    fname = found[0]
    weights = os.path.join(a.src, fname)
    # A checkpoint's optimizer state and best loss belong to the unedited weights: not copied.
    skip = (fname, "optimizer.safetensors", "state.json") if fname == "trainable.safetensors" else (fname,)
    src, dst = os.path.realpath(a.src), os.path.realpath(a.dst)
    if dst == src or dst.startswith(src + os.sep):
        sys.exit(f"perturb_export: the destination {a.dst} must be outside the source {a.src}")

    def layer_of(key):  # model.layers.N.… -> N, else None
        m = re.search(r"layers\.(\d+)\.", key)
        return int(m.group(1)) if m else None

    def chosen(key, suffix):
        return key.endswith(suffix) and (not layers or layer_of(key) in layers)

    t = load_file(weights)
    edits = []
    if a.gate_shift != 0.0:
        edits.append(("gate_up.bias", lambda x: x + a.gate_shift, f"gate biases {a.gate_shift:+g}"))
    if a.feature_scale != 1.0:
        def scale(x):
            if not heads:
                return x * a.feature_scale
            if heads[-1] >= x.shape[0]:
                sys.exit(f"perturb_export: --heads {a.heads}: the feature map has {x.shape[0]} heads")
            x = x.clone()
            x[heads] = x[heads] * a.feature_scale
            return x
        what = f"feature maps x{a.feature_scale:g}" + (f" (heads {a.heads})" if heads else "")
        edits.append(("self_attn.feature_map", scale, what))
    done = []
    for suffix, fn, what in edits:
        keys = [k for k in t if chosen(k, suffix)]
        if not keys:
            sys.exit(f"perturb_export: {weights} has no *.{suffix} in the chosen layers: not a LAWCAT export with that part")
        found = {layer_of(k) for k in keys}
        if layers - found:
            sys.exit(f"perturb_export: {weights} has no *.{suffix} in layer(s) {sorted(layers - found)}")
        for k in keys:
            t[k] = fn(t[k])
        done.append(f"{len(keys)} {what}")
    # Atomic: the copy is made complete beside dst, then renamed, so an interrupted run never
    # leaves a dst that holds the unperturbed (or a truncated) model.safetensors.
    tmp = dst + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp, ignore=shutil.ignore_patterns(*skip))
    save_file(t, os.path.join(tmp, fname), metadata={"format": "pt"})
    shutil.rmtree(dst, ignore_errors=True)
    os.rename(tmp, dst)
    print(f"perturbed {', '.join(done)}: {a.dst}")


if __name__ == "__main__":
    main()
