// `lawcat eval`: runs one long-context task on several models, side by side.
//
// run_eval is a generic grid runner; each task (eval/task.h: passkey, niah,
// babilong, ppl, longppl) gives its defaults, data, cells and how one is run:
//
//   resolve the options (common checks, then the task's defaults) and load the
//   task's data, before any model is loaded
//   for each model (loaded one at a time with model::load_model):
//     for each cell sample of the task's grid not yet in <out>/results.jsonl:
//       run it (prompt tasks: build the prompt with the model's tokenizer,
//       greedy-decode it through the model's DecodeState (KV cache for softmax
//       layers, constant-size recurrent state for LAWCAT layers; generate_ids),
//       score it), and append the record to results.jsonl (fsync'ed: resumable)
//   aggregate the records of this request into cells; print the table; write
//   <task>.csv and <task>.json atomically; plot (gnuplot; skipped with a warning
//   when missing).
//
// A length beyond max_position_embeddings of a model that still has softmax
// attention layers is evaluated anyway, with a warning and a '*' in the table.
#pragma once
#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "eval/generate.h"  // stop_ids_for, default_stop_ids
#include "eval/report.h"
#include "model/llama.h"

namespace lawcat::eval {

struct EvalOptions {
  std::string task;                      // passkey | niah | babilong | ppl | longppl
  std::vector<std::string> variants;     // niah: s-niah-1/2/3; babilong: qa1/qa2/qa3; empty = the task default
  std::vector<std::string> models;       // model directories; "swap:DIR" = the teacher in DIR swapped to
                                         // LAWCAT on load (undistilled: a pipeline / no-distillation baseline)
  std::vector<int64_t> lengths;          // tokens; empty = the task default
  std::vector<int64_t> depths;           // percent; empty = 0, 25, 50, 75, 100 (passkey, niah)
  int64_t samples = 5;                   // per cell (babilong: questions)
  uint64_t seed = 0;
  bool raw_probe = false;                // babilong: raw-probe prompts
  std::filesystem::path text;            // ppl: the text file
  std::filesystem::path out;             // output folder; empty = eval_out/<task>
  std::filesystem::path data;            // ../shared/data; empty = find_shared_data()
  std::string device = "cpu", dtype = "auto";
  int64_t max_new_tokens = 0;            // 0 = task default (passkey 10, niah 128, babilong 20, raw probe 5)
  int64_t batch_size = 1;                // prompt tasks: prompts decoded together (generate_batch); 1 = one at a time
  bool ruler_singular = false;           // niah: RULER's singular template rewrite
  int64_t ppl_max_tokens = 0;            // ppl: score only the first N tokens of the text (0 = all)
  bool ppl_documents = false;            // ppl: split the text on blank lines
  std::string text_field = "text";       // ppl, longppl: the JSONL field holding a document
  int64_t bucket = 1024;                 // longppl: positions per bucket (samples = documents)
  bool progress = true;
  bool plot = true;
  bool print_table = true;               // print the table to stdout
};

struct EvalSummary {
  std::vector<std::string> model_names;  // table columns, in --models order
  std::vector<Cell> cells;
  std::string table;
  int64_t ran = 0;       // samples (cells for ppl) computed in this call
  int64_t skipped = 0;   // found in results.jsonl
  std::filesystem::path out;
  std::vector<std::filesystem::path> files;  // CSV, JSON, plots written
};

EvalSummary run_eval(const EvalOptions& options);

// ../shared/data: $LAWCAT_SHARED_DATA, else ../shared/data from the current
// directory or from the executable's folder upwards. Empty when not found.
std::filesystem::path find_shared_data();

// Greedy decoding through the decode state: one prefill of `prompt` (batch 1),
// then one token per step, stopping after any of `stop_ids` or `max_new_tokens`
// (eval/generate.h's generate_ids with the greedy sampler).
struct DecodeResult {
  std::vector<int64_t> tokens;  // generated ids, a final stop id included
  bool stopped = false;         // ended on a stop id
  double prefill_seconds = 0, decode_seconds = 0;
  int64_t state_bytes = 0;      // decode-state memory at the end
};
DecodeResult greedy_decode(model::LlamaForCausalLMImpl& model, const std::vector<int64_t>& prompt,
                           int64_t max_new_tokens, const std::vector<int64_t>& stop_ids = {});
// The same for a batch of prompts at once (left-padded, eval/generate.h's generate_batch):
// each prompt's tokens are those greedy_decode gives it alone; timings are the batch's and
// state_bytes the batch's state divided by the prompts.
std::vector<DecodeResult> greedy_decode_batch(model::LlamaForCausalLMImpl& model,
                                              const std::vector<std::vector<int64_t>>& prompts,
                                              int64_t max_new_tokens, const std::vector<int64_t>& stop_ids = {});

// Whether every decoder layer is a LAWCAT layer (then no position limit applies).
bool all_layers_lawcat(model::LlamaForCausalLMImpl& model);

}  // namespace lawcat::eval
