// Each eval task generates exactly the documented format
// (docs/eval.md, "Formats"): template strings verbatim, the needle once
// at the requested depth, the length within 2 % of the target in tokens.
#include <algorithm>
#include <chrono>
#include <iostream>
#include <regex>
#include <set>

#include "common/catch.h"
#include "eval/babilong.h"
#include "eval/eval_util.h"
#include "eval/niah.h"
#include "eval/passkey.h"
#include "text/tokenizer.h"
#include "util/error.h"

using namespace lawcat;
using namespace lawcat::eval;

namespace {

std::vector<std::string> split_lines(const std::string& s) {
  std::vector<std::string> out;
  size_t b = 0;
  while (true) {
    size_t e = s.find('\n', b);
    out.push_back(s.substr(b, e == std::string::npos ? std::string::npos : e - b));
    if (e == std::string::npos) break;
    b = e + 1;
  }
  return out;
}

int64_t ntok(const text::Tokenizer& t, const std::string& s) { return static_cast<int64_t>(t.encode(s, false).size()); }

// Depth of `needle_offset` within the haystack span [begin, end) of `prompt`, in tokens.
double token_depth(const text::Tokenizer& t, const std::string& prompt, size_t begin, size_t needle_offset,
                   size_t needle_len, size_t end) {
  const double before = static_cast<double>(ntok(t, prompt.substr(begin, needle_offset - begin)));
  const double after = static_cast<double>(ntok(t, prompt.substr(needle_offset + needle_len, end - needle_offset - needle_len)));
  return before + after > 0 ? before / (before + after) : 0.0;
}

}  // namespace

TEST_CASE("Rng is deterministic and uniform_int stays in range; sample seeds differ per coordinate", "[eval]") {
  Rng a(42), b(42);
  for (int i = 0; i < 100; ++i) CHECK(a.next() == b.next());
  Rng r(7);
  std::set<int64_t> seen;
  for (int i = 0; i < 2000; ++i) {
    const int64_t v = r.uniform_int(1, 5);
    REQUIRE(v >= 1);
    REQUIRE(v <= 5);
    seen.insert(v);
  }
  CHECK(seen.size() == 5);
  CHECK(sample_seed(0, "passkey", 1024, 50, 0) == sample_seed(0, "passkey", 1024, 50, 0));
  CHECK(sample_seed(0, "passkey", 1024, 50, 0) != sample_seed(0, "passkey", 1024, 50, 1));
  CHECK(sample_seed(0, "passkey", 1024, 50, 0) != sample_seed(0, "passkey", 2048, 50, 0));
  CHECK(sample_seed(0, "passkey", 1024, 50, 0) != sample_seed(1, "passkey", 1024, 50, 0));
}

TEST_CASE("fit_units finds the largest size within the target, with and without a hint", "[eval]") {
  // tokens = 10 + floor(u * 0.3): monotone with plateaus.
  int64_t calls = 0;
  auto f = [&](int64_t u) {
    ++calls;
    return 10 + (u * 3) / 10;
  };
  for (int64_t target : {10, 11, 100, 1000, 5000}) {
    for (int64_t hint : {int64_t{0}, int64_t{5}, target * 3, target * 10}) {
      CAPTURE(target, hint);
      const FitResult r = fit_units(f, target, 1000000, hint);
      CHECK(r.tokens <= target);
      CHECK(f(r.units) == r.tokens);
      CHECK(f(r.units + 1) > target);
    }
  }
  const FitResult small = fit_units(f, 5, 100);  // the fixed part alone is too long
  CHECK(small.units == 0);
  CHECK(small.tokens == 10);
  const FitResult capped = fit_units(f, 1000, 50);  // haystack exhausted
  CHECK(capped.units == 50);
}

TEST_CASE("split_sentences and whitespace helpers", "[eval]") {
  auto s = split_sentences("Call me Ishmael.  Some years ago—never mind how long\nprecisely. Mr. Stubb said \"Aye!\" Then 3 men came. end");
  REQUIRE(s.size() == 4);
  CHECK(s[0] == "Call me Ishmael.");
  CHECK(s[1] == "Some years ago—never mind how long precisely.");
  CHECK(s[2] == "Mr. Stubb said \"Aye!\"");
  CHECK(s[3] == "Then 3 men came. end");
  CHECK(collapse_whitespace("  a \n\t b  ") == "a b");
  CHECK(count_occurrences("abcabcab", "ab") == 3);
}

TEST_CASE("passkey prompt: the five LongLoRA parts, needle once at the depth, length within 2 %", "[eval]") {
  LAWCAT_SHARED_OR_SKIP(tok_file, "models/stories260K/tok512.bin");
  auto tok = text::load_llama2c(tok_file);
  // A small instance, printed.
  {
    const PromptSample s = make_passkey_sample(*tok, 256, 0.5, 123);
    std::cout << "---- passkey, 256 tokens (tok512), depth 50 % ----\n" << s.prompt << "\n---- (" << s.ids.size()
              << " tokens, key " << s.references[0] << ")\n";
  }
  for (int64_t target : {256, 512, 1024}) {
    for (double depth : {0.0, 0.25, 0.5, 1.0}) {
      CAPTURE(target, depth);
      const PromptSample s = make_passkey_sample(*tok, target, depth, 1000 + target);
      const std::string key = s.references.at(0);
      const int64_t k = std::stoll(key);
      CHECK(k >= 1);
      CHECK(k <= 50000);
      const auto lines = split_lines(s.prompt);
      REQUIRE(lines.size() == 5);
      CHECK(lines[0] == kPasskeyTask);
      CHECK(lines[2] == "The pass key is " + key + ". Remember it. " + key + " is the pass key.");
      CHECK(lines[4] == "What is the pass key? The pass key is");
      // Garbage: prefixes of the repeated sentence block.
      const std::string block = kPasskeyGarbage;
      std::string stream;
      while (stream.size() < 4 * static_cast<size_t>(target) + 200) stream += (stream.empty() ? "" : " ") + block;
      CHECK(stream.compare(0, lines[1].size(), lines[1]) == 0);
      CHECK(stream.compare(0, lines[3].size(), lines[3]) == 0);
      CHECK(count_occurrences(s.prompt, key) == 2);
      CHECK(count_occurrences(s.prompt, "The pass key is " + key) == 1);
      // Length in tokens (BOS included) within 2 %, never above the target.
      CHECK(s.ids.size() == tok->encode(s.prompt, true).size());
      CHECK(within_tolerance(static_cast<int64_t>(s.ids.size()), target));
      CHECK(static_cast<int64_t>(s.ids.size()) <= target);
      // Depth: the share of garbage before the needle, in characters and in tokens.
      const double chars = static_cast<double>(lines[1].size()) / static_cast<double>(lines[1].size() + lines[3].size());
      CHECK(std::abs(chars - depth) < 0.01);
      const size_t begin = lines[0].size() + 1, end = s.prompt.size() - lines[4].size() - 1;
      const double td = token_depth(*tok, s.prompt, begin, static_cast<size_t>(s.needle_offset), lines[2].size(), end);
      CHECK(std::abs(td - depth) < 0.05);
    }
  }
  // Deterministic for a seed; the key changes with the seed.
  CHECK(make_passkey_sample(*tok, 300, 0.3, 5).prompt == make_passkey_sample(*tok, 300, 0.3, 5).prompt);
  CHECK_THROWS_AS(make_passkey_sample(*tok, 20, 0.5, 1), ConfigError);  // shorter than the template
}

TEST_CASE("passkey length fit with the Llama-2 SentencePiece tokenizer", "[eval]") {
  LAWCAT_SHARED_OR_SKIP(spm, "tokenizers/llama2/tokenizer.model");
  std::unique_ptr<text::Tokenizer> tok;
  try {
    tok = text::load_sentencepiece(spm);
  } catch (const std::exception& e) {
    LAWCAT_SKIP("SentencePiece unavailable: " << e.what());
  }
  int64_t hint = 0;
  for (int s = 0; s < 3; ++s) {
    const PromptSample p = make_passkey_sample(*tok, 2048, 0.75, 77 + s, &hint);
    CAPTURE(s, p.ids.size(), p.meta.dump());
    CHECK(within_tolerance(static_cast<int64_t>(p.ids.size()), 2048));
    CHECK(hint > 0);
  }
}

TEST_CASE("S-NIAH-1/2/3: RULER template verbatim, needle once at the depth, length within 2 %", "[eval]") {
  LAWCAT_SHARED_OR_SKIP(tok_file, "models/stories260K/tok512.bin");
  LAWCAT_SHARED_OR_SKIP(ruler, "eval/ruler");
  auto tok = text::load_llama2c(tok_file);
  const std::set<std::string> adjectives = [&] {
    auto d = load_niah_data(ruler, niah_variant("s-niah-1"));
    return std::set<std::string>(d.adjectives.begin(), d.adjectives.end());
  }();
  for (const std::string name : {"s-niah-1", "s-niah-2", "s-niah-3"}) {
    const NiahVariant v = niah_variant(name);
    const NiahData data = load_niah_data(ruler, v);
    const std::string type = v.value_type;
    {
      const PromptSample s = make_niah_sample(*tok, data, v, 300, 0.5, 9);
      std::cout << "---- " << name << ", 300 tokens (tok512), depth 50 % ----\n" << s.prompt << "\n---- ("
                << s.ids.size() << " tokens)\n";
    }
    for (int64_t target : {384, 1024}) {
      for (double depth : {0.0, 0.5, 1.0}) {
        CAPTURE(name, target, depth);
        const PromptSample s = make_niah_sample(*tok, data, v, target, depth, 31 * target + static_cast<int>(depth * 10));
        const std::string key = s.meta["key"], value = s.meta["value"];
        const std::string head = "Some special magic " + type + " are hidden within the following text. Make sure to "
                                 "memorize it. I will quiz you about the " + type + " afterwards.\n";
        const std::string tail = "\nWhat are all the special magic " + type + " for " + key +
                                 " mentioned in the provided text? The special magic " + type + " for " + key +
                                 " mentioned in the provided text are";
        REQUIRE(s.prompt.size() > head.size() + tail.size());
        CHECK(s.prompt.compare(0, head.size(), head) == 0);
        CHECK(s.prompt.compare(s.prompt.size() - tail.size(), tail.size(), tail) == 0);
        const std::string needle = "One of the special magic " + type + " for " + key + " is: " + value + ".";
        CHECK(count_occurrences(s.prompt, needle) == 1);
        CHECK(count_occurrences(s.prompt, value) == 1);
        CHECK(s.references == std::vector<std::string>{value});
        // Key: adjective-noun from the wonderwords lists; value: 7 digits or a v4 UUID.
        const auto dash = key.find('-');
        REQUIRE(dash != std::string::npos);
        CHECK(adjectives.count(key.substr(0, dash)) == 1);
        if (type == "numbers") {
          CHECK(std::regex_match(value, std::regex("[1-9][0-9]{6}")));
        } else {
          CHECK(std::regex_match(value, std::regex("[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")));
        }
        CHECK(within_tolerance(static_cast<int64_t>(s.ids.size()), target));
        CHECK(static_cast<int64_t>(s.ids.size()) <= target);
        // The haystack: noise lines (the block, the last one possibly partial) or essay words.
        const size_t begin = head.size(), end = s.prompt.size() - tail.size();
        const std::string context = s.prompt.substr(begin, end - begin);
        if (v.haystack == "noise") {
          for (const auto& line : split_lines(context)) {
            if (line == needle) continue;
            CHECK(std::string(kNiahNoise).compare(0, line.size(), line) == 0);
          }
        } else {
          CHECK(context.find("July 2010What hard liquor") != std::string::npos);
        }
        // The needle sits between whole lines / sentences (as RULER), so the depth is
        // exact up to one haystack unit: allow that unit's share of the haystack.
        const double td = token_depth(*tok, s.prompt, begin, static_cast<size_t>(s.needle_offset), needle.size(), end);
        int64_t unit = ntok(*tok, kNiahNoise);
        if (v.haystack == "essay")
          for (const auto& sent : split_sentences(context)) unit = std::max(unit, ntok(*tok, sent));
        const double hay = static_cast<double>(ntok(*tok, context) - ntok(*tok, needle));
        CAPTURE(td, unit, hay);
        CHECK(std::abs(td - depth) < 0.03 + static_cast<double>(unit) / hay);
      }
    }
  }
  // RULER's singular rewrite, on request.
  const NiahVariant v1 = niah_variant("s-niah-1");
  const NiahData d1 = load_niah_data(ruler, v1);
  const PromptSample sing = make_niah_sample(*tok, d1, v1, 300, 0.5, 3, nullptr, /*singular=*/true);
  CHECK(sing.prompt.rfind("A special magic number is hidden within the following text.", 0) == 0);
  CHECK(sing.prompt.find("What is the special magic number for") != std::string::npos);
  CHECK(sing.prompt.find("One of the special magic numbers for") != std::string::npos);  // the needle keeps the plural
  CHECK_THROWS_AS(niah_variant("s-niah-4"), ConfigError);
}

TEST_CASE("BABILong qa1/qa2/qa3: prompt template, facts in order once each, context length within 2 %", "[eval]") {
  LAWCAT_SHARED_OR_SKIP(tok_file, "models/stories260K/tok512.bin");
  LAWCAT_SHARED_OR_SKIP(babi_dir, "eval/babi/tasks_1-20_v1-2/en");
  LAWCAT_SHARED_OR_SKIP(book, "corpora/moby_dick/moby_dick.txt");
  LAWCAT_SHARED_OR_SKIP(idx_file, "eval/babilong/test_100_idxs.json");
  auto tok = text::load_llama2c(tok_file);
  const auto background = load_background_sentences(book);
  CHECK(background.size() > 5000);
  for (const std::string task : {"qa1", "qa2", "qa3"}) {
    const auto samples = load_babi(babi_test_file(babi_dir, task));
    CHECK(samples.size() == 1000);
    const auto idx = load_babilong_indices(idx_file, task);
    CHECK(idx.size() == 100);
    const BabiSample& q = samples.at(static_cast<size_t>(idx.at(0)));
    CAPTURE(task, q.question, q.answer);
    REQUIRE(!q.facts.empty());
    // Raw probe prefix.
    const std::string prefix = raw_probe_prefix(q.question);
    if (task == "qa1") CHECK(std::regex_match(prefix, std::regex("[A-Z][a-z]+ is in the")));
    if (task == "qa2") CHECK(std::regex_match(prefix, std::regex("The [a-z]+ is in the")));
    if (task == "qa3") CHECK(std::regex_match(prefix, std::regex("Before the [a-z]+ the [a-z]+ was in the")));
    {
      const PromptSample s = make_babilong_sample(*tok, task, q, background, 0, 1, false);
      std::cout << "---- babilong " << task << ", 0K ----\n" << s.prompt << "\n---- (answer: " << q.answer << ")\n";
    }
    const BabilongPrompt& p = babilong_prompt(task);
    for (int64_t target : {0, 512, 2048}) {
      for (bool raw : {false, true}) {
        CAPTURE(target, raw);
        const PromptSample s = make_babilong_sample(*tok, task, q, background, target, 17 + target, raw);
        std::string context;
        if (!raw) {
          const std::string head = std::string(p.instruction) + "\n\n" + p.examples + "\n\n" + p.post_prompt +
                                   "\n\n<context>\n";
          const std::string tail = "\n</context>\n\nQuestion: " + q.question;
          REQUIRE(s.prompt.size() > head.size() + tail.size());
          CHECK(s.prompt.compare(0, head.size(), head) == 0);
          CHECK(s.prompt.compare(s.prompt.size() - tail.size(), tail.size(), tail) == 0);
          context = s.prompt.substr(head.size(), s.prompt.size() - head.size() - tail.size());
        } else {
          const std::string tail = " " + q.question + " " + prefix;
          CHECK(s.prompt.compare(s.prompt.size() - tail.size(), tail.size(), tail) == 0);
          context = s.prompt.substr(0, s.prompt.size() - tail.size());
        }
        // Every fact appears, in story order.
        size_t pos = 0;
        for (const auto& f : q.facts) {
          const size_t at = context.find(f, pos);
          CHECK(at != std::string::npos);
          if (at != std::string::npos) pos = at + f.size();
        }
        if (target == 0) {
          std::string facts;
          for (const auto& f : q.facts) facts += (facts.empty() ? "" : " ") + f;
          CHECK(context == facts);
        } else {
          CHECK(within_tolerance(ntok(*tok, context), target));
          CHECK(s.measured_tokens == ntok(*tok, context));
        }
      }
    }
  }
  // The upstream strings, verbatim (qa2 has no space after "question.", qa3 does).
  CHECK(std::string(babilong_prompt("qa2").instruction).find("and a question.You need to answer") != std::string::npos);
  CHECK(std::string(babilong_prompt("qa3").instruction).find("and a question. You need to answer") != std::string::npos);
  CHECK(std::string(babilong_prompt("qa2").post_prompt) ==
        "Always return your answer in the following format: The \u2019item\u2019 is in \u2019location\u2019. Do not "
        "write anything else after that.");
  CHECK(std::string(babilong_prompt("qa3").post_prompt) ==
        "Always return your answer in the following format: Before the $location_1$ the $item$ was in the "
        "$location_2$. Do not write anything else after that.");
  CHECK(std::string(babilong_prompt("qa1").post_prompt) ==
        "Always return your answer in the following format: The most recent location of \u2019person\u2019 is "
        "\u2019location\u2019. Do not write anything else after that.");
  CHECK_THROWS_AS(babilong_prompt("qa4"), ConfigError);
}

TEST_CASE("prompt fitting cost at 32K tokens (Llama-2 SentencePiece)", "[eval][.slow]") {
  LAWCAT_SHARED_OR_SKIP(spm, "tokenizers/llama2/tokenizer.model");
  auto tok = text::load_sentencepiece(spm);
  int64_t hint = 0;
  for (int s = 0; s < 3; ++s) {
    const auto t0 = std::chrono::steady_clock::now();
    const PromptSample p = make_passkey_sample(*tok, 32768, 0.5, 900 + s, &hint);
    const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::cout << "passkey 32K fit: " << p.ids.size() << " tokens, " << p.meta["fit_probes"] << " probes, " << sec
              << " s\n";
    CHECK(within_tolerance(static_cast<int64_t>(p.ids.size()), 32768));
  }
}
