// The teacher of a run (recipe.h's first row), from one of three sources:
//
//   model.path     a Hugging Face folder, used as it is
//   model.llama2c  a llama2.c checkpoint, converted once into <out>/teacher
//                  (keyed by the files' hashes: a rerun reuses it)
//   neither        the pretrain stage trains one from scratch (model.scratch) into
//                  <out>/teacher; its tokenizer is model.scratch.tokenizer's files or
//                  a byte-level BPE tokenizer learned from data.train
#pragma once
#include <c10/core/Device.h>

#include <filesystem>
#include <functional>
#include <string>

#include "config/schema.h"
#include "model/llama.h"

namespace lawcat::train {

// The teacher folder from model.path or model.llama2c (converted by the writer
// process; `barrier` syncs the ranks after it); empty when the pretrain stage
// makes it. `note` says where it came from.
std::filesystem::path find_teacher(const config::RunConfig& c, const std::filesystem::path& out, bool writer,
                                   const std::function<void()>& barrier, std::string& note);

// The pretrain stage's tokenizer folder: the teacher's when there is one, else
// `init` (model.scratch.tokenizer's files copied there, or a tokenizer learned from
// data.train; made by the writer when missing).
std::filesystem::path pretrain_tokenizer(const config::RunConfig& c, const std::filesystem::path& teacher_dir,
                                         const std::filesystem::path& init, bool writer);

// The network the pretrain stage trains, on `device`: a scratch model (model.scratch,
// the vocabulary of `tokenizer_dir`) when there is no teacher, else the teacher to
// fine-tune. `note` says which, naming <out>/teacher.
model::LlamaForCausalLM pretrain_network(const config::RunConfig& c, const std::filesystem::path& teacher_dir,
                                         const std::filesystem::path& tokenizer_dir, at::Device device,
                                         const std::filesystem::path& out, std::string& note);

}  // namespace lawcat::train
