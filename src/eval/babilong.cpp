#include "eval/babilong.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <regex>
#include <set>
#include <sstream>

#include "util/error.h"
#include "util/fs.h"

namespace lawcat::eval {

namespace {
// booydar/babilong babilong/prompts.py DEFAULT_PROMPTS (note: qa1's post-prompt and qa2's
// use U+2019 quotes, and qa2's instruction
// has no space after "question." and its post-prompt uses U+2019 quotes, as upstream).
const BabilongPrompt kQa1{
    "I will give you context with the facts about positions of different persons hidden in some random text "
    "and a question. You need to answer the question based only on the information from the facts. "
    "If a person was in different locations, use the latest location to answer the question.",
    "<example>\n"
    "Charlie went to the hallway. Judith come back to the kitchen. Charlie travelled to balcony. "
    "Where is Charlie?\n"
    "Answer: The most recent location of Charlie is balcony.\n"
    "</example>\n\n"
    "<example>\n"
    "Alan moved to the garage. Charlie went to the beach. Alan went to the shop. Rouse "
    "travelled to balcony. Where is Alan?\n"
    "Answer: The most recent location of Alan is shop.\n"
    "</example>",
    "Always return your answer in the following format: "
    "The most recent location of \u2019person\u2019 is \u2019location\u2019. Do not write anything else after that."};

const BabilongPrompt kQa2{
    "I give you context with the facts about locations and actions of different persons "
    "hidden in some random text and a question."
    "You need to answer the question based only on the information from the facts.\n"
    "If a person got an item in the first location and travelled to the second location "
    "the item is also in the second location. "
    "If a person dropped an item in the first location and moved to the second location "
    "the item remains in the first location.",
    "<example>\n"
    "Charlie went to the kitchen. Charlie got a bottle. Charlie moved to the balcony. "
    "Where is the bottle?\n"
    "Answer: The bottle is in the balcony.\n"
    "</example>\n"
    "<example>\n"
    "Alan moved to the garage. Alan got a screw driver. Alan moved to the kitchen. Where "
    "is the screw driver?\n"
    "Answer: The screw driver is in the kitchen.\n"
    "</example>",
    "Always return your answer in the following format: The \u2019item\u2019 is in \u2019location\u2019. "
    "Do not write anything else after that."};

const BabilongPrompt kQa3{
    "I give you context with the facts about locations and actions of different persons "
    "hidden in some random text and a question. "
    "You need to answer the question based only on the information from the facts.\n"
    "If a person got an item in the first location and travelled to the second location "
    "the item is also in the second location. "
    "If a person dropped an item in the first location and moved to the second location "
    "the item remains in the first location.",
    "<example>\n"
    "John journeyed to the bedroom. Mary grabbed the apple. Mary went back to the bathroom. "
    "Daniel journeyed to the bedroom. Daniel moved to the garden. Mary travelled to the kitchen. "
    "Where was the apple before the kitchen?\n"
    "Answer: Before the kitchen the apple was in the bathroom.\n"
    "</example>\n"
    "<example>\n"
    "John went back to the bedroom. John went back to the garden. John went back to the kitchen. "
    "Sandra took the football. Sandra travelled to the garden. Sandra journeyed to the bedroom. "
    "Where was the football before the bedroom?\n"
    "Answer: Before the bedroom the football was in the garden.\n"
    "</example>",
    "Always return your answer in the following format: "
    "Before the $location_1$ the $item$ was in the $location_2$. Do not write anything else after that."};

// babilong/metrics.py TASK_LABELS for qa1 / qa2 / qa3.
const std::vector<std::string> kLocations = {"bathroom", "bedroom", "garden", "hallway", "kitchen", "office"};
}  // namespace

const BabilongPrompt& babilong_prompt(const std::string& task) {
  if (task == "qa1") return kQa1;
  if (task == "qa2") return kQa2;
  if (task == "qa3") return kQa3;
  throw ConfigError("babilong: unknown task '" + task + "' (expected qa1, qa2 or qa3)");
}

std::string babilong_format(const BabilongPrompt& p, const std::string& context, const std::string& question) {
  std::string s = std::string(p.instruction) + "\n\n" + p.examples + "\n\n" + p.post_prompt + "\n\n<context>\n" +
                  trim(context) + "\n</context>\n\nQuestion: " + question;
  return trim(s);
}

std::vector<BabiSample> load_babi(const std::filesystem::path& file) {
  require_data_file(file, "bAbI task file");
  std::istringstream in(fs::read_text(file));
  std::vector<BabiSample> out;
  std::vector<std::string> story;
  std::string line;
  int64_t lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (trim(line).empty()) continue;
    size_t sp = line.find(' ');
    int64_t n = 0;
    bool ok = sp != std::string::npos && sp > 0;
    for (size_t i = 0; ok && i < sp; ++i) ok = std::isdigit(static_cast<unsigned char>(line[i]));
    LAWCAT_CHECK(ok, DataError,
                 file.string() << ":" << lineno << ": malformed bAbI line (expected '<number> <sentence>'): '"
                               << line.substr(0, 80) << "'");
    // bAbI numbers the lines of a story from 1; more digits than that would overflow.
    LAWCAT_CHECK(sp <= 9, DataError,
                 file.string() << ":" << lineno << ": malformed bAbI line: line number '"
                               << line.substr(0, std::min<size_t>(sp, 30)) << (sp > 30 ? "..." : "")
                               << "' is out of range");
    n = std::stoll(line.substr(0, sp));
    if (n == 1) story.clear();
    const std::string rest = line.substr(sp + 1);
    const size_t tab = rest.find('\t');
    if (tab == std::string::npos) {
      story.push_back(trim(rest));
      continue;
    }
    const size_t tab2 = rest.find('\t', tab + 1);
    BabiSample s;
    s.index = static_cast<int64_t>(out.size());
    s.line = lineno;
    s.facts = story;
    s.question = trim(rest.substr(0, tab));
    s.answer = trim(rest.substr(tab + 1, tab2 == std::string::npos ? std::string::npos : tab2 - tab - 1));
    LAWCAT_CHECK(!s.question.empty() && !s.answer.empty(), DataError,
                 file.string() << ":" << lineno << ": malformed bAbI question (expected 'question\\tanswer\\tids')");
    out.push_back(std::move(s));
  }
  LAWCAT_CHECK(!out.empty(), DataError, file.string() << ": no bAbI questions found");
  return out;
}

std::filesystem::path babi_file(const std::filesystem::path& babi_en_dir, const std::string& task,
                                const std::string& split) {
  babilong_prompt(task);  // validates the task name
  LAWCAT_CHECK(std::filesystem::is_directory(babi_en_dir), DataError,
               babi_en_dir.string() << ": bAbI directory not found (expected ../shared/data/eval/babi/"
                                    << "tasks_1-20_v1-2/en; set --data or $LAWCAT_SHARED_DATA)");
  const std::string suffix = "_" + split + ".txt";
  for (const auto& e : std::filesystem::directory_iterator(babi_en_dir)) {
    const std::string name = e.path().filename().string();
    if (name.rfind(task + "_", 0) == 0 && name.size() > suffix.size() &&
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
      return e.path();
  }
  throw DataError((babi_en_dir / (task + "_*" + suffix)).string() + ": bAbI " + split + " file not found");
}

std::filesystem::path babi_test_file(const std::filesystem::path& babi_en_dir, const std::string& task) {
  return babi_file(babi_en_dir, task, "test");
}

std::vector<int64_t> load_babilong_indices(const std::filesystem::path& json_file, const std::string& task) {
  require_data_file(json_file, "BABILong sample indices");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(fs::read_text(json_file));
  } catch (const nlohmann::json::exception& e) {
    throw DataError(json_file.string() + ": not valid JSON (" + e.what() + ")");
  }
  LAWCAT_CHECK(j.is_object() && j.contains(task) && j[task].is_array(), DataError,
               json_file.string() << ": expected {\"" << task << "\": [indices...], ...}");
  std::vector<int64_t> idx;
  for (const auto& v : j[task]) {
    LAWCAT_CHECK(v.is_number_integer() && v.get<int64_t>() >= 0, DataError,
                 json_file.string() << ": " << task << " has a non-integer or negative index: " << v.dump());
    idx.push_back(v.get<int64_t>());
  }
  return idx;
}

std::vector<std::string> load_background_sentences(const std::filesystem::path& book) {
  require_data_file(book, "background book text");
  std::vector<std::string> s = split_sentences(fs::read_text(book));
  LAWCAT_CHECK(!s.empty(), DataError, book.string() << ": no sentences in the background text");
  return s;
}

std::string raw_probe_prefix(const std::string& question) {
  static const std::regex qa2(R"(^\s*Where is the (.+?)\s*\?\s*$)");
  static const std::regex qa3(R"(^\s*Where was the (.+?) before the (.+?)\s*\?\s*$)");
  static const std::regex qa1(R"(^\s*Where is ([A-Z][A-Za-z]*)\s*\?\s*$)");  // a person: "Where is Mary?"
  std::smatch m;
  if (std::regex_match(question, m, qa3)) return "Before the " + m[2].str() + " the " + m[1].str() + " was in the";
  if (std::regex_match(question, m, qa2)) return "The " + m[1].str() + " is in the";
  if (std::regex_match(question, m, qa1)) return m[1].str() + " is in the";
  throw DataError("babilong raw probe: unsupported question '" + question +
                  "' (expected 'Where is P?', 'Where is the X?' or 'Where was the X before the Y?')");
}

std::string babilong_context(const BabiSample& sample, const std::vector<std::string>& background, int64_t start,
                             const std::vector<double>& fact_fractions, int64_t words) {
  // Background sentences from `start` (wrapping), the last one cut to fit `words`.
  std::vector<std::string> sents;
  int64_t left = words;
  for (size_t i = 0; left > 0; ++i) {
    const std::string& s = background[(static_cast<size_t>(start) + i) % background.size()];
    std::vector<std::string> w = split_whitespace(s);
    if (static_cast<int64_t>(w.size()) <= left) {
      sents.push_back(s);
      left -= static_cast<int64_t>(w.size());
    } else {
      std::string part;
      for (int64_t k = 0; k < left; ++k) part += (k ? " " : "") + w[k];
      sents.push_back(part);
      left = 0;
    }
  }
  // Facts before the background sentence at their position (all facts when none).
  std::vector<std::vector<std::string>> slots(sents.size() + 1);
  for (size_t f = 0; f < sample.facts.size(); ++f) {
    const size_t pos =
        sents.empty() ? 0 : std::min(sents.size() - 1, static_cast<size_t>(fact_fractions[f] * static_cast<double>(sents.size())));
    slots[pos].push_back(sample.facts[f]);
  }
  std::string out;
  auto add = [&](const std::string& piece) {
    if (!out.empty()) out += ' ';
    out += piece;
  };
  for (size_t i = 0; i < slots.size(); ++i) {
    for (const auto& f : slots[i]) add(f);
    if (i < sents.size()) add(sents[i]);
  }
  return out;
}

PromptSample make_babilong_sample(const text::Tokenizer& tokenizer, const std::string& task, const BabiSample& sample,
                                  const std::vector<std::string>& background, int64_t target_tokens, uint64_t seed,
                                  bool raw_probe, int64_t* hint) {
  const BabilongPrompt& p = babilong_prompt(task);
  LAWCAT_CHECK(!background.empty(), DataError, "babilong: no background sentences");
  Rng rng(seed);
  const int64_t start = rng.uniform_int(0, static_cast<int64_t>(background.size()) - 1);
  std::vector<double> fractions(sample.facts.size());
  for (auto& f : fractions) f = rng.uniform();
  std::sort(fractions.begin(), fractions.end());
  auto context_tokens = [&](const std::string& ctx) {
    return static_cast<int64_t>(tokenizer.encode(trim(ctx), /*add_bos=*/false).size());
  };
  FitResult fit;
  const int64_t facts_tokens = context_tokens(babilong_context(sample, background, start, fractions, 0));
  bool facts_exceed = false;
  if (target_tokens > 0) {
    auto tokens_for = [&](int64_t words) {
      return context_tokens(babilong_context(sample, background, start, fractions, words));
    };
    fit = fit_units(tokens_for, target_tokens, 4 * target_tokens + 256, hint ? *hint : 0);
    facts_exceed = facts_tokens > target_tokens;
    if (!facts_exceed) {
      LAWCAT_CHECK(within_tolerance(fit.tokens, target_tokens), ConfigError,
                   "babilong " << task << ": cannot fit a context of " << target_tokens << " tokens (closest: "
                               << fit.tokens << " tokens with " << fit.units << " background words)");
    }
    if (hint) *hint = fit.units;
  } else {
    fit.tokens = facts_tokens;
  }
  const std::string context = trim(babilong_context(sample, background, start, fractions, fit.units));
  PromptSample s;
  if (raw_probe) {
    s.prompt = context + " " + sample.question + " " + raw_probe_prefix(sample.question);
  } else {
    s.prompt = babilong_format(p, context, sample.question);
  }
  s.ids = encode_prompt(tokenizer, s.prompt);
  s.references = {sample.answer};
  s.target_tokens = target_tokens;
  s.measured_tokens = context_tokens(context);
  s.length_of = "context";
  s.needle_offset = sample.facts.empty() ? -1 : static_cast<int64_t>(s.prompt.find(sample.facts.front()));
  s.meta = {{"question", sample.question},
            {"answer", sample.answer},
            {"babi_index", sample.index},
            {"babi_line", sample.line},
            {"facts", sample.facts.size()},
            {"facts_tokens", facts_tokens},
            {"facts_exceed_target", facts_exceed},
            {"background_words", fit.units},
            {"background_start_sentence", start},
            {"fit_probes", fit.probes}};
  return s;
}

namespace {
std::string first_sentence_lower(const std::string& output) {
  // metrics.py preprocess_output: lower, first '.'-sentence, cut at <context> / <example>.
  std::string o = to_lower(output);
  o = o.substr(0, o.find('.'));
  o = o.substr(0, o.find("<context>"));
  o = o.substr(0, o.find("<example>"));
  return o;
}
}  // namespace

BabilongScore babilong_score(const std::string& output, const std::string& target, const std::string& question) {
  BabilongScore r;
  const std::string first = first_sentence_lower(output);
  const std::string t = to_lower(trim(target));
  r.score = !t.empty() && first.find(t) != std::string::npos ? 1.0 : 0.0;
  const std::string q = to_lower(question);
  std::set<std::string> in_output;
  for (const auto& l : kLocations)
    if (first.find(l) != std::string::npos && q.find(l) == std::string::npos) in_output.insert(l);
  r.strict = in_output.size() == 1 && in_output.count(t) ? 1.0 : 0.0;
  return r;
}

double raw_probe_score(const std::string& output, const std::string& target) {
  size_t i = 0;
  while (i < output.size() && std::isspace(static_cast<unsigned char>(output[i]))) ++i;
  std::string word;
  while (i < output.size() && std::isalnum(static_cast<unsigned char>(output[i]))) word += output[i++];
  return !word.empty() && to_lower(word) == to_lower(trim(target)) ? 1.0 : 0.0;
}

}  // namespace lawcat::eval
