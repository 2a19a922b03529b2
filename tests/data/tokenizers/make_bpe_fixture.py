#!/usr/bin/env python3
"""Builds the tokenizer.json fixtures of tests/text/ and their expected encodings.

An independent reference for src/text/bpe.cpp: Hugging Face `tokenizers` (Rust) trains
three small BPE tokenizers on a slice of TinyStories plus some Unicode, saves them, then
reloads each saved file and records what it makes of a list of test strings.

  bpe_llama3/     Llama 3 style: Split(Llama-3 regex, isolated) + ByteLevel(use_regex=False),
                  ignore_merges, special tokens beyond the vocab, TemplateProcessing BOS.
  bpe_gpt2/       SmolLM / GPT-2 style: Digits(individual) + ByteLevel(add_prefix_space,
                  GPT-2 regex), no BOS template.
  bpe_spm/        Llama 2 / Mistral export style: Metaspace(prepend_scheme=first, split=False),
                  byte_fallback, unk, decoders Replace+ByteFallback+Fuse+Strip, <s> template.
  bpe_spm_legacy/ the same model with the older normalizer form (Prepend + Replace, no
                  pre-tokenizer) that TinyLlama's tokenizer.json uses.

Run (needs `pip install tokenizers`; tests do not need Python):
  ~/.cache/lawcat/venv/bin/python tests/data/tokenizers/make_bpe_fixture.py [../shared/data]
Writes tests/data/tokenizers/<name>/tokenizer.json and tests/data/tokenizers/bpe_expected.json.
"""
import json
import os
import random
import sys

import tokenizers
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers
from tokenizers import pre_tokenizers, processors, trainers

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "..", "..", "..", "shared", "data")
LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
                  r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

UNICODE_LINES = [
    "Café, naïve façade, résumé, jalapeño, Ångström, Zoë and Œdipus.",
    "Straße, Übermut, Äpfel, Öl; ¿Dónde está el niño? ¡Olé!",
    "Москва — столица России. Привет, мир!",
    "東京は日本の首都です。今日はいい天気ですね。",
    "我爱北京天安门。你好，世界！",
    "한국어 문장입니다. 안녕하세요!",
    "Emoji: 😀 😂 👍🏽 🚀 👨‍👩‍👧‍👦 ❤️ 🇫🇷",
    "Digits 0123456789 and 3.14159, 2024-01-31, 1,000,000 and ٣٤٥.",
    "Tabs\tand\tnew\nlines\r\nand   runs  of    spaces.",
    "Ελληνικά: Καλημέρα κόσμε. עברית: שלום עולם. العربية: مرحبا بالعالم.",
    "हिन्दी: नमस्ते दुनिया। ไทย: สวัสดีชาวโลก",
    "I'm sure you'll see they've said it's what we'd do. DON'T SHOUT, I'LL listen.",
]

TEST_STRINGS = [
    "", " ", "  ", "\n", "\n\n", " \n ", "\t", "a", "Hello", " Hello", "Hello world",
    "Once upon a time, there was a little girl named Lily.",
    "Once upon a time,",
    "She said, \"Let's go to the park!\" and they went.",
    "I'm you're he's we've they'll she'd I'M YOU'RE IT'S",
    "1 12 123 1234 12345 123456 3.14159 -42 +7 1e10 0x1F",
    "Price: $1,234.56 (20% off) on 2024-01-31 at 10:30am.",
    "Hello   world\t\ttabs\n\n\nnewlines   \n  trailing  ",
    "line one\r\nline two\rline three\n",
    "    leading spaces", "trailing spaces    ", "a  b   c    d",
    "Café naïve résumé façade jalapeño",
    "東京は日本の首都です。", "我爱北京天安门", "한국어", "Привет, мир!",
    "Emoji 😀👍🏽🚀 and 👨‍👩‍👧‍👦 family, ❤️ heart, 🇫🇷 flag",
    "e\u0301 vs \u00e9 (combining accent)",
    "nbsp\u00a0here, ideographic\u3000space, nel\u0085char, thin\u2009space",
    "zero\u200bwidth joiner\u200d and \ufeffBOM",
    "<|begin_of_text|>Hello<|end_of_text|>",
    "Hello <|end_of_text|> world <|begin_of_text|>",
    "<|eot_id|><|eot_id|>x<|eot_id|>",
    "text <|sep|>   after sep",
    "call <tool> now<tool>",
    "<|begin_of_text|", "<|begin_of_text|><|begin", "<s>Hello</s> <s> x",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "the the the the the the the the",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "snake_case camelCase PascalCase kebab-case SCREAMING_CASE",
    "https://example.com/path?query=1&x=y#frag user@example.com",
    "def f(x):\n    return x ** 2  # square\n",
    "{\"key\": [1, 2, 3], 'nested': {'a': None}}",
    "!!!??? ... --- *** ### @@@ ((( )))",
    "Ünïcödé ÜPPER ünd lower ß ẞ",
    "\u0130stanbul \u0131 I i \u017ftop",
    "mixed日本語and English中文text",
    "The quick brown fox jumps over the lazy dog. " * 4,
    # Unicode classes where regex engines could differ: \s (NEL, NBSP, LS, MVS, ZWSP), \p{N}.
    "!\u0085 !\u00a0 !\u2028 !\u180e !\u200b !\u1680 x\u0085\u0085 y",
    "Arabic-Indic \u0663\u0664\u0665, Tamil \u0be7\u0be8, Roman \u216b, half \u00bd, square x\u00b2",
    # Whole words that are vocab entries without a merge path (ignore_merges takes them whole).
    "unicorn unicorns Unicorn", " unicorn",
]


def corpus_text():
    path = os.path.join(SHARED, "corpora", "tinystories", "tinystories_train_head.txt")
    with open(path, encoding="utf-8") as f:
        text = f.read(200_000)
    return text.split("\n\n") + UNICODE_LINES * 20


def extra_strings():
    """Corpus paragraphs and seeded random strings over a mixed alphabet."""
    path = os.path.join(SHARED, "corpora", "tinystories", "tinystories_val_head.txt")
    with open(path, encoding="utf-8") as f:
        paras = [p[:300] for p in f.read(60_000).split("\n\n")[:25]]
    rng = random.Random(1234)
    alphabet = (list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") * 3 +
                list("0123456789") * 2 + list(" " * 20) + list("\n\t\r.,;:!?'\"-_()[]{}<>|/\\@#$%^&*+=~`") +
                list("éèêëàâäôöûüçñßÅØ") + list("日本語中文字한국어") + list("абвгдежз") +
                ["😀", "👍🏽", "🚀", "\u00a0", "\u3000", "\u0301", "\u200d", "\u0085", "\u2028"] +
                ["'s", "'ll", "'T", "<|end_of_text|>", "<|eot_id|>", "<tool>", "<s>"])
    rand = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40))) for _ in range(160)]
    return paras + rand


def train(pre_tokenizer, vocab_size, special, *, alphabet=None, limit_alphabet=None, model=None):
    tok = Tokenizer(model or models.BPE())
    tok.pre_tokenizer = pre_tokenizer
    kw = dict(vocab_size=vocab_size, special_tokens=special, show_progress=False)
    if alphabet is not None:
        kw["initial_alphabet"] = alphabet
    if limit_alphabet is not None:
        kw["limit_alphabet"] = limit_alphabet
    tok.train_from_iterator(corpus_text(), trainers.BpeTrainer(**kw))
    return tok


def build_llama3():
    tok = train(pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)]),
        900, [], alphabet=pre_tokenizers.ByteLevel.alphabet())
    # A token no merge sequence reaches (only ignore_merges produces it), given the next
    # id before the added tokens (tokenizers numbers added tokens from the vocab size).
    j = json.loads(tok.to_str())
    j["model"]["vocab"]["\u0120unicorn"] = len(j["model"]["vocab"])
    tok = Tokenizer.from_str(json.dumps(j))
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>",
                            AddedToken("<|sep|>", rstrip=True, special=True, normalized=False)])
    tok.add_tokens([AddedToken("<tool>", special=False, normalized=False)])
    bos = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<|begin_of_text|> $A",
                                      pair="<|begin_of_text|> $A <|begin_of_text|> $B",
                                      special_tokens=[("<|begin_of_text|>", bos)])])
    j = json.loads(tok.to_str())
    j["model"]["ignore_merges"] = True
    return j


def build_gpt2():
    tok = train(pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=True, trim_offsets=True, use_regex=True)]),
        600, ["<|endoftext|>"], alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.decoder = decoders.ByteLevel()
    return json.loads(tok.to_str())


def build_spm():
    byte_tokens = [f"<0x{b:02X}>" for b in range(256)]
    tok = train(pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=True),
                259 + 500, ["<unk>", "<s>", "</s>"] + byte_tokens, limit_alphabet=120,
                model=models.BPE(unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    j = json.loads(tok.to_str())
    # As in Llama 2's tokenizer.json: byte pieces are vocab entries, not added tokens.
    j["added_tokens"] = [a for a in j["added_tokens"] if a["content"] in ("<unk>", "<s>", "</s>")]
    j["pre_tokenizer"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": False}
    j["decoder"] = {"type": "Sequence", "decoders": [
        {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
        {"type": "ByteFallback"}, {"type": "Fuse"},
        {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}
    bos = j["model"]["vocab"]["<s>"]
    j["post_processor"] = {"type": "TemplateProcessing",
                           "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                                      {"Sequence": {"id": "A", "type_id": 0}}],
                           "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                                    {"Sequence": {"id": "A", "type_id": 0}},
                                    {"SpecialToken": {"id": "<s>", "type_id": 1}},
                                    {"Sequence": {"id": "B", "type_id": 1}}],
                           "special_tokens": {"<s>": {"id": "<s>", "ids": [bos], "tokens": ["<s>"]}}}
    legacy = json.loads(json.dumps(j))
    legacy["normalizer"] = {"type": "Sequence", "normalizers": [
        {"type": "Prepend", "prepend": "▁"},
        {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]}
    legacy["pre_tokenizer"] = None
    return j, legacy


def main():
    spm, spm_legacy = build_spm()
    built = {"bpe_llama3": build_llama3(), "bpe_gpt2": build_gpt2(), "bpe_spm": spm,
             "bpe_spm_legacy": spm_legacy}
    strings = TEST_STRINGS + extra_strings()
    expected = {"tokenizers_version": tokenizers.__version__, "strings": strings, "fixtures": {}}
    for name, j in built.items():
        os.makedirs(os.path.join(HERE, name), exist_ok=True)
        path = os.path.join(HERE, name, "tokenizer.json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(j, f, ensure_ascii=False, separators=(",", ":"))
        tok = Tokenizer.from_file(path)  # the reference is what tokenizers makes of the saved file
        ids, decoded, prefix = [], [], None
        for s in strings:
            plain = tok.encode(s, add_special_tokens=False).ids
            special = tok.encode(s, add_special_tokens=True).ids
            # add_special_tokens only adds the template's prefix here (checked for every string)
            p = special[:len(special) - len(plain)]
            assert special[len(p):] == plain and (prefix is None or p == prefix), (name, s)
            prefix = p
            ids.append(plain)
            text = tok.decode(plain, skip_special_tokens=True)
            decoded.append(None if text == s else text)  # null: decodes back to the string
        expected["fixtures"][name] = {"file": f"{name}/tokenizer.json",
                                      "vocab_size": tok.get_vocab_size(with_added_tokens=True),
                                      "special_prefix": prefix, "ids": ids, "decoded": decoded}
        print(f"{name}: {os.path.getsize(path)} bytes, vocab {tok.get_vocab_size()}, "
              f"{sum(d is None for d in decoded)}/{len(strings)} round-trip")
    out = os.path.join(HERE, "bpe_expected.json")
    with open(out, "w", encoding="utf-8") as f:
        json.dump(expected, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    print(f"{out}: {os.path.getsize(out)} bytes, {len(strings)} strings per fixture")


if __name__ == "__main__":
    main()
