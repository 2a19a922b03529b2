// `lawcat eval`: long-context evals (passkey, S-NIAH, BABILong, perplexity) on
// several models side by side, resumable (eval/eval_runner.h).
//
//   lawcat eval --task passkey --models teacher,student --lengths 1024,2048 --depths 0,50,100 --samples 5
//   lawcat eval --task niah --variant s-niah-1,s-niah-2,s-niah-3 --models ...
//   lawcat eval --task babilong --variant qa2,qa3 [--raw-probe] --models ...
//   lawcat eval --task ppl --text book.txt --lengths 512,1024,4096 --models ...
//   lawcat eval --task longppl --text gutenberg_val.jsonl.xz --lengths 32768 --samples 12 --models ...
#include <iostream>

#include "cli/command.h"
#include "eval/eval_runner.h"

namespace {

struct EvalArgs {
  lawcat::eval::EvalOptions opt;
  std::vector<std::string> variants;
  std::string out, data, text;
  bool no_plot = false, quiet = false;
};

lawcat::cli::Runner setup_eval(CLI::App& app) {
  auto a = std::make_shared<EvalArgs>();
  auto& o = a->opt;
  app.add_option("--task", o.task,
                 "passkey, niah, babilong, ppl (perplexity vs context length) or longppl (NLL by position in "
                 "long documents, PG-19 style)")
      ->required()
      ->check(CLI::IsMember({"passkey", "niah", "babilong", "ppl", "longppl"}));
  app.add_option("--models", o.models, "model directories, comma-separated (teacher and/or LAWCAT models)")
      ->required()
      ->delimiter(',');
  app.add_option("--lengths", o.lengths,
                 "context lengths in tokens (default: passkey 1K..32K, niah 1K..8K, babilong 0,1K..16K, "
                 "ppl 512..8K, longppl 32K)")
      ->delimiter(',')->check(lawcat::cli::at_least(0));
  app.add_option("--depths", o.depths, "needle depths in percent (passkey, niah; default 0,25,50,75,100)")
      ->delimiter(',');
  app.add_option("--samples", o.samples, "samples per cell (babilong: questions, from test_100_idxs.json)")
      ->capture_default_str()
      ->check(lawcat::cli::at_least(1));
  app.add_option("--seed", o.seed, "seed of the prompt generator")->capture_default_str();
  app.add_option("--variant", a->variants,
                 "niah: s-niah-1, s-niah-2, s-niah-3; babilong: qa1, qa2, qa3 (comma-separated for several)")
      ->delimiter(',');
  app.add_flag("--raw-probe", o.raw_probe,
               "babilong: facts + question + answer prefix ('The football is in the'), score the next word "
               "(for models that are not instruction-tuned)");
  app.add_option("--text", a->text, "ppl, longppl: the text file (plain text, JSONL, or compressed .xz/.gz/.zst)");
  app.add_option("--ppl-max-tokens", o.ppl_max_tokens, "ppl: score only the first N tokens of the text (0 = all)")
      ->capture_default_str()->check(lawcat::cli::at_least(0));
  app.add_flag("--ppl-documents", o.ppl_documents, "ppl: split the text into documents on blank lines");
  app.add_option("--text-field", o.text_field, "ppl, longppl: the JSONL field holding a document")->capture_default_str();
  app.add_option("--bucket", o.bucket,
                 "longppl: positions per bucket (--lengths is the document length, --samples the documents)")
      ->capture_default_str()->check(lawcat::cli::at_least(1));
  app.add_option("--out", a->out, "output folder (results.jsonl, <task>.csv/.json/.png); default eval_out/<task>");
  app.add_option("--data", a->data, "shared data folder (default: $LAWCAT_SHARED_DATA or ../shared/data)");
  app.add_option("--device", o.device, "cpu, cuda or cuda:N")->capture_default_str();
  app.add_option("--dtype", o.dtype, "auto, float32, bfloat16, float16")->capture_default_str();
  app.add_option("--max-new-tokens", o.max_new_tokens,
                 "tokens to generate (default: passkey 10, niah 128 (the maximum), babilong 20, raw probe 5)")
      ->check(lawcat::cli::at_least(1));
  app.add_option("--batch-size", o.batch_size,
                 "passkey, niah, babilong: prompts greedy-decoded together (left-padded; same tokens as one at a time)")
      ->capture_default_str()->check(lawcat::cli::at_least(1));
  app.add_flag("--ruler-singular", o.ruler_singular,
               "niah: RULER's singular rewrite of the template for one needle ('A special magic number is ...')");
  app.add_flag("--no-plot", a->no_plot, "skip the gnuplot plots");
  app.add_flag("--no-progress", a->quiet, "no progress bar");
  return [a] {
    auto o = a->opt;
    o.variants = a->variants;
    o.out = a->out;
    o.data = a->data;
    o.text = a->text;
    o.plot = !a->no_plot;
    o.progress = !a->quiet;
    const auto s = lawcat::eval::run_eval(o);
    std::cout << "ran " << s.ran << ", reused " << s.skipped << " from " << (s.out / "results.jsonl").string()
              << "\n";
    for (const auto& f : s.files) std::cout << "wrote " << f.string() << "\n";
    return 0;
  };
}
LAWCAT_COMMAND("eval", "Long-context evals: passkey, S-NIAH-1/2/3, BABILong qa1/qa2/qa3, perplexity (resumable)",
               setup_eval);
}  // namespace
