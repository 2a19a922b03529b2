#!/usr/bin/env python3
"""Copy a LAWCAT export with every layer's gate bias shifted by DELTA: a diagnostic, not a method.

With log(alpha) = logsigmoid(W2 W1 x + b) / tau, a larger b keeps every feature longer (for a
slow feature the memory -1/log(alpha) grows by about e^DELTA). docs/results/NOTES.md uses it to ask
whether a student's retrieval horizon is set by how fast its gate forgets.

  python3 scripts/shift_gate_bias.py runs/repro/students/tasks_only_phi128_w8/export /tmp/w8_plus1 1
"""
import os
import shutil
import sys

from safetensors.torch import load_file, save_file


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    src, dst, delta = sys.argv[1], sys.argv[2], float(sys.argv[3])
    weights = os.path.join(src, "model.safetensors")
    if not os.path.isfile(weights):
        sys.exit(f"shift_gate_bias: {weights} not found (an export directory with one model.safetensors)")
    t = load_file(weights)
    keys = [k for k in t if k.endswith("gate_up.bias")]
    if not keys:
        sys.exit(f"shift_gate_bias: {weights} has no gate biases (*.gate_up.bias): not a LAWCAT export with a gate")
    shutil.copytree(src, dst, dirs_exist_ok=True)
    for k in keys:
        t[k] = t[k] + delta
    save_file(t, os.path.join(dst, "model.safetensors"), metadata={"format": "pt"})
    print(f"shifted {len(keys)} gate biases by {delta:+g}: {dst}")


if __name__ == "__main__":
    main()
