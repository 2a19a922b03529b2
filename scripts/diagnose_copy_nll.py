#!/usr/bin/env python3
"""Where does a student's ordinary-text perplexity go? Per-token NLL split by what the next token is.

Each predicted token x[i+1] (from x[..i], 1024-token windows of held-out text) falls in one class:
  copy        the bigram (x[i], x[i+1]) occurred earlier in the window: an induction (copying) head
              can predict it by looking up what followed x[i] last time
  wrong_copy  x[i] occurred earlier but was followed by something else: copying would mislead
  novel       x[i] did not occur earlier in the window
copy tokens also by the distance to the bigram's last occurrence (< 64, < 256, >= 256 tokens), and
the mean NLL of each class is printed per model (the teacher beside its students). This is how
docs/results/NOTES.md (eighth round) locates the students' perplexity gap: most of it is on `copy`
tokens, the same lookup that passkey retrieval needs.

Models load with transformers (LAWCAT exports through their own modeling files, which the export
writes beside the weights, and scripts/rebuild_export.py copies into a rebuilt one). Text is a plain file of blank-line separated documents or JSON lines with a `text` field (.xz
read directly), tokenized by
sentencepiece's `spm_encode` (Debian `sentencepiece`), one line per blank-line separated document
(newlines inside a document become spaces), BOS and EOS around each, as `lawcat ppl --ppl-documents`
frames documents.

  python3 scripts/diagnose_copy_nll.py --text ../shared/data/corpora/tinystories/tinystories_val_head.txt \\
      --tokenizer ../shared/data/models/retriever13m/tokenizer.model --tokens 12288 \\
      ../shared/data/models/retriever13m runs/repro/students/lawcat/export
"""
import argparse
import collections
import json
import lzma
import subprocess


def documents(text_file):
    """Blank-line separated documents of a text file, or the `text` fields of a JSON-lines file (.xz too)."""
    if ".jsonl" in text_file:
        opener = lzma.open if text_file.endswith(".xz") else open
        with opener(text_file, "rt") as f:
            return [json.loads(line)["text"] for line in f if line.strip()]
    return open(text_file).read().split("\n\n")


def windows(text_file, spm_model, max_tokens, length, per_document):
    docs = [d.strip().replace("\n", " ") for d in documents(text_file) if d.strip()]
    ids = subprocess.run(["spm_encode", "--model", spm_model, "--output_format=id"], input="\n".join(docs),
                         capture_output=True, text=True, check=True).stdout.strip().split("\n")
    stream = []
    for line in ids:
        stream += ([1] + [int(t) for t in line.split()] + [2])[:per_document or None]
        if len(stream) >= max_tokens:
            break
    return [stream[i:i + length] for i in range(0, len(stream) - length + 1, length)]


DISTANCES = (64, 256)  # copy tokens also by how far back the bigram last occurred


def classes(w):
    """Per predicted position: its class and, for copy tokens, its distance class too."""
    out, last, seen = [], {}, set()
    for i in range(len(w) - 1):
        j = last.get((w[i], w[i + 1]))
        if j is not None:
            d = i - j
            near = next((f"copy<{b}" for b in DISTANCES if d < b), f"copy>={DISTANCES[-1]}")
            out.append(("copy", near))
        else:
            out.append(("wrong_copy" if w[i] in seen else "novel",))
        last[(w[i], w[i + 1])] = i
        seen.add(w[i])
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("models", nargs="+", help="Hugging Face model directories (teacher, LAWCAT exports)")
    ap.add_argument("--text", required=True)
    ap.add_argument("--tokenizer", required=True, help="the teacher's sentencepiece tokenizer.model")
    ap.add_argument("--tokens", type=int, default=12288)
    ap.add_argument("--window", type=int, default=1024)
    ap.add_argument("--per-document", type=int, default=0, help="at most this many tokens of each document "
                    "(e.g. 2048 for books, so the sample spans many); 0: whole documents")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", help="write the table here")
    a = ap.parse_args()
    import torch  # here, so that classes() imports without torch (tests)
    from transformers import AutoModelForCausalLM
    torch.set_grad_enabled(False)
    torch.set_num_threads(a.threads)
    wins = windows(a.text, a.tokenizer, a.tokens, a.window, a.per_document)
    cls = [classes(w) for w in wins]
    res = {}
    for m in a.models:
        model = AutoModelForCausalLM.from_pretrained(m, trust_remote_code=True, dtype=torch.float32).eval()
        acc = collections.defaultdict(lambda: [0.0, 0])
        for w, c in zip(wins, cls):
            x = torch.tensor([w])
            nll = -torch.log_softmax(model(x).logits[0, :-1].float(), -1).gather(1, x[0, 1:, None])[:, 0]
            for v, k in zip(nll.tolist(), c):
                for key in k + ("all",):
                    acc[key][0] += v
                    acc[key][1] += 1
        res[m] = {k: {"nll": s / n, "tokens": n} for k, (s, n) in acc.items()}
        print(f"{m}: " + ", ".join(f"{k} {res[m][k]['nll']:.4f} ({res[m][k]['tokens']})"
                                   for k in ("all", "copy", *(f"copy<{b}" for b in DISTANCES),
                                             f"copy>={DISTANCES[-1]}", "wrong_copy", "novel")), flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
