// `lawcat tasks`: retrieval tasks with their answers as a JSONL training corpus
// ({"text", "task", "tokens"} per line), for the data ablation of the paper
// reproduction (eval/task_corpus.h). Seeds and bAbI files are kept apart from
// the evaluation's.
//
//   lawcat tasks --tokenizer MODEL_DIR --out tasks.jsonl --count 4000 --min-tokens 128 --max-tokens 1024
#include <iostream>
#include <map>

#include "cli/command.h"
#include "eval/eval_runner.h"
#include "eval/task_corpus.h"
#include "util/error.h"
#include "util/fs.h"

namespace {
struct TasksArgs {
  lawcat::eval::TaskCorpusOptions opt;
  std::string tokenizer, out, data;
};

lawcat::cli::Runner setup_tasks(CLI::App& app) {
  auto a = std::make_shared<TasksArgs>();
  auto& o = a->opt;
  app.add_option("--tokenizer", a->tokenizer, "model directory whose tokenizer measures the lengths")->required();
  app.add_option("--out", a->out, "output JSONL file (written atomically)")->required();
  app.add_option("--tasks", o.tasks, "passkey, s-niah-1, s-niah-2, s-niah-3, qa1, qa2, qa3 (comma-separated)")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--count", o.count, "documents (round-robin over the tasks)")->capture_default_str();
  app.add_option("--min-tokens", o.min_tokens,
                 "shortest document (prompt + answer) in tokens; raised to a task's shortest (template + answer)")
      ->capture_default_str();
  app.add_option("--max-tokens", o.max_tokens,
                 "longest document (prompt + answer) in tokens; an error below a task's shortest")
      ->capture_default_str();
  app.add_option("--seed", o.seed, "seed (its stream is distinct from the eval's for the same value)")
      ->capture_default_str();
  app.add_option("--data", a->data, "shared data folder (default: $LAWCAT_SHARED_DATA or ../shared/data)");
  return [a] {
    using namespace lawcat;
    auto o = a->opt;
    o.data = a->data.empty() ? eval::find_shared_data() : std::filesystem::path(a->data);
    LAWCAT_CHECK(!o.data.empty() && std::filesystem::is_directory(o.data), DataError,
                 (o.data.empty() ? std::string("../shared/data") : o.data.string())
                     << ": data folder not found (pass --data DIR or set $LAWCAT_SHARED_DATA)");
    auto tok = text::load_tokenizer(a->tokenizer);
    const auto docs = eval::make_task_corpus(*tok, o);
    std::string jsonl;
    std::map<std::string, int64_t> per_task;
    int64_t tokens = 0;
    for (const auto& d : docs) {
      jsonl += nlohmann::json{{"text", d.text}, {"task", d.task}, {"tokens", d.tokens}}.dump() + "\n";
      ++per_task[d.task];
      tokens += d.tokens;
    }
    fs::atomic_write_text(a->out, jsonl);
    std::cout << "wrote " << docs.size() << " documents (" << tokens << " tokens) to " << a->out << ":";
    for (const auto& [t, n] : per_task) std::cout << " " << t << " " << n;
    std::cout << "\n";
    return 0;
  };
}
LAWCAT_COMMAND("tasks", "Retrieval tasks with answers as a JSONL training corpus (data ablation)", setup_tasks);
}  // namespace
