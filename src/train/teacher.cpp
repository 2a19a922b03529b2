#include "train/teacher.h"

#include <string>
#include <vector>

#include "dataset/bpe_trainer.h"
#include "dataset/corpus.h"
#include "dataset/tokenized.h"
#include "io/llama2c_checkpoint.h"
#include "model/checkpoint.h"
#include "model/model_tokenizer.h"
#include "text/tokenizer.h"
#include "train/finetune.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/log.h"

namespace lawcat::train {
namespace stdfs = std::filesystem;

namespace {

// A llama2.c checkpoint converted into <out>/teacher once (keyed by the files' hashes).
stdfs::path convert_llama2c_teacher(const config::ModelConfig& m, const stdfs::path& out, std::string& note) {
  const stdfs::path dir = out / "teacher";
  uint64_t h = dataset::hash_bytes("llama2c-v1", 10);
  for (const auto& f : {m.llama2c, m.llama2c_tokenizer}) {
    fs::MappedFile mf(f);
    h = dataset::hash_bytes(mf.data(), mf.size(), h);
  }
  const std::string key = dataset::hex64(h);
  std::error_code ec;
  if (stdfs::exists(dir / "source.json", ec)) {
    try {
      auto j = nlohmann::json::parse(fs::read_text(dir / "source.json"));
      if (j.value("hash", "") == key && stdfs::exists(dir / "model.safetensors")) {
        note = "llama2.c " + m.llama2c + " (converted earlier into " + dir.string() + ")";
        return dir;
      }
    } catch (const std::exception&) {
    }
  }
  with_context("while converting the llama2.c teacher " + m.llama2c, [&] {
    io::convert_llama2c(m.llama2c, m.llama2c_tokenizer, dir, [&](const stdfs::path& t, const io::LlamaConfig& lc) {
      model::check_tokenizer_vocab(text::load_llama2c(t)->vocab_size(), t, lc.vocab_size, m.llama2c);
    });
  });
  fs::atomic_write_text(dir / "source.json",
                        nlohmann::json{{"llama2c", m.llama2c}, {"tokenizer", m.llama2c_tokenizer}, {"hash", key}}.dump(2));
  note = "llama2.c " + m.llama2c + " (converted into " + dir.string() + ")";  // io::convert_llama2c logged it
  return dir;
}

io::LlamaConfig scratch_llama_config(const config::ScratchModelConfig& s, int64_t vocab, int64_t seq_len) {
  io::LlamaConfig c;
  c.vocab_size = vocab;
  c.hidden_size = s.hidden_size;
  c.intermediate_size = s.intermediate_size;
  c.num_hidden_layers = s.num_layers;
  c.num_attention_heads = s.num_heads;
  c.num_key_value_heads = s.num_kv_heads;
  c.head_dim = s.hidden_size / s.num_heads;
  c.rms_norm_eps = 1e-5;
  c.rope_theta = s.rope_theta;
  c.tie_word_embeddings = true;
  c.max_position_embeddings = s.max_position > 0 ? s.max_position : seq_len;
  c.bos_token_id = 1;
  c.eos_token_id = 2;
  c.eos_token_ids = {2};
  c.torch_dtype = "float32";
  return c;
}

}  // namespace

stdfs::path find_teacher(const config::RunConfig& c, const stdfs::path& out, bool writer,
                         const std::function<void()>& barrier, std::string& note) {
  const auto& m = c.model;
  if (!m.path.empty()) {
    note = m.path;
    return m.path;
  }
  if (m.llama2c.empty()) return {};
  if (writer) convert_llama2c_teacher(m, out, note);
  barrier();
  return out / "teacher";
}

stdfs::path pretrain_tokenizer(const config::RunConfig& c, const stdfs::path& teacher_dir, const stdfs::path& init,
                               bool writer) {
  if (!teacher_dir.empty()) return teacher_dir;
  if (!writer || stdfs::exists(init / "tokenizer.bin") || stdfs::exists(init / "tokenizer.json") ||
      stdfs::exists(init / "tokenizer.model"))
    return init;
  const auto& s = c.model.scratch;
  if (!s.tokenizer.empty()) {
    LAWCAT_CHECK(model::copy_tokenizer_files(s.tokenizer, init) > 0, DataError,
                 "model.scratch.tokenizer: no tokenizer files in " << s.tokenizer);
    return init;
  }
  dataset::CorpusOptions co;
  co.format = c.data.format;
  co.text_field = c.data.text_field;
  co.separator = c.data.separator;
  std::vector<std::string> docs;
  // the pretraining text: pretrain.data, else data.train
  for (const auto& f : dataset::expand_paths(c.pretrain.data.empty() ? c.data.train : c.pretrain.data)) {
    auto d = dataset::read_documents(f, co);
    docs.insert(docs.end(), d.begin(), d.end());
  }
  dataset::BpeTrainOptions bo;
  bo.vocab_size = s.vocab_size;
  stdfs::create_directories(init);
  dataset::train_llama2c_tokenizer(docs, init / "tokenizer.bin", bo);
  return init;
}

model::LlamaForCausalLM pretrain_network(const config::RunConfig& c, const stdfs::path& teacher_dir,
                                         const stdfs::path& tokenizer_dir, at::Device device, const stdfs::path& out,
                                         std::string& note) {
  if (!teacher_dir.empty()) {
    note = "fine-tuned from " + teacher_dir.string() + " into " + (out / "teacher").string();
    return model::load_llama(teacher_dir, device, at::kFloat);
  }
  auto tok = text::load_tokenizer(tokenizer_dir);
  io::LlamaConfig lc = scratch_llama_config(c.model.scratch, tok->vocab_size(), c.data.seq_len);
  model::LlamaForCausalLM net = model::build_llama(lc);
  init_from_scratch(*net, c.model.scratch.init_std);
  net->to(device);
  note = "trained from scratch (" + std::to_string(lc.num_hidden_layers) + " layers, hidden " +
         std::to_string(lc.hidden_size) + ", vocab " + std::to_string(lc.vocab_size) + ") into " +
         (out / "teacher").string();
  return net;
}

}  // namespace lawcat::train
