"""Configuration of a LAWCAT student exported by `lawcat distill` / `lawcat export`.

A Llama-family config (the teacher's) plus the `lawcat` section that `lawcat` writes: which layers
carry LAWCAT attention and its settings (conv_width, gate, gate_rank, gate_tau, feature_dim,
normalize, eps, conv_on_v, rope, window, ...). Loaded by
`transformers.AutoConfig.from_pretrained(dir, trust_remote_code=True)` through config.json's
`auto_map`. See modeling_lawcat.py.
"""
from transformers import LlamaConfig


class LawcatConfig(LlamaConfig):
    model_type = "lawcat"

    def __init__(self, lawcat=None, **kwargs):
        self.lawcat = dict(lawcat or {})
        super().__init__(**kwargs)
