// Exported LAWCAT students in Python (issue 16 item 2): model::export_model writes
// modeling_lawcat.py / configuration_lawcat.py and an auto_map, and
// transformers.AutoModelForCausalLM.from_pretrained(dir, trust_remote_code=True) then gives
// lawcat's logits (max abs <= 1e-3, float32) and lawcat's greedy tokens
// (tests/reference/lawcat_student_logits.py). Every LAWCAT setting the modeling file takes is
// covered: conv width 0 / 2 / 4, conv on v, gate on / off, normalize on / off, feature_dim, RoPE
// on the linear path, the window hybrid, LAWCAT on some layers only; and the quickstart's layer on
// the real stories260K teacher. Skips with a message when no Python with transformers is found.
// $LAWCAT_STUDENT_DIR (an export of `lawcat distill`, e.g. runs/quickstart/export) is checked too.
#include <cstdlib>
#include <fstream>

#include "config/schema.h"
#include "eval/eval_runner.h"
#include "io/llama2c_checkpoint.h"
#include "model/export.h"
#include "model/model_helpers.h"
#include "model/swap.h"

using namespace lawcat;
using namespace lawcat::test;

namespace {

struct Student {
  std::string name;
  std::filesystem::path dir;
  std::vector<std::vector<int64_t>> ids;
  std::vector<int64_t> prompt;
  int64_t new_tokens = 6;
};

void randomize_lawcat(model::LlamaForCausalLMImpl& m, uint64_t seed) {
  at::manual_seed(seed);
  at::NoGradGuard g;
  for (auto& [n, t] : model::lawcat_parameters(m)) t.add_(at::randn_like(t) * 0.3);
}

// Writes ids.json / generate.json beside the export.
void write_inputs(const Student& s) {
  std::ofstream(s.dir / "ids.json") << nlohmann::json(s.ids).dump();
  std::ofstream(s.dir / "generate.json")
      << nlohmann::json{{"prompt", s.prompt}, {"max_new_tokens", s.new_tokens}}.dump();
}

std::string read_text(const std::filesystem::path& p) {
  std::ifstream in(p);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace

TEST_CASE("lawcat students load in transformers with the same logits and greedy tokens", "[model][python]") {
  std::string tried;
  const std::string py = find_transformers_python(tried);
  if (py.empty()) LAWCAT_SKIP("no Python with torch + safetensors + transformers (tried " << tried << ")");
  const auto root = scratch_dir("python_student");
  std::vector<Student> students;

  auto add = [&](const std::string& name, model::LlamaForCausalLM m, const config::AttentionConfig& a, int64_t T,
                 int64_t vocab, const std::filesystem::path& tokenizer_dir = {}) {
    model::swap_to_lawcat(*m, a);
    randomize_lawcat(*m, 11 + students.size());
    Student s{name, root / name, {}, {}, 6};
    model::ExportOptions eo;
    eo.tokenizer_dir = tokenizer_dir;
    model::export_model(*m, nullptr, s.dir, eo);
    s.ids = {random_ids(T, vocab, 30 + students.size()), random_ids(T, vocab, 40 + students.size())};
    s.prompt = random_ids(12, vocab, 50 + students.size());
    write_inputs(s);
    students.push_back(s);
  };
  auto tiny = [&](uint64_t seed) { return write_tiny_model(root / ("teacher" + std::to_string(seed)), tiny_config(false), 1, seed); };

  config::AttentionConfig paper;  // conv 4 on q and k, gate rank 16, tau 16, phi d/2, normalized
  paper.chunk_size = 16;          // lawcat's chunked form crosses chunks at T = 50
  add("paper", tiny(1), paper, 50, 97);
  config::AttentionConfig hybrid = paper;  // the quickstart's layer: + the 64-token window (here 8)
  hybrid.window = 8;
  add("window", tiny(2), hybrid, 50, 97);
  config::AttentionConfig plain;  // conv 2 on q, k and v, no gate, no normalizer, f = 6
  plain.conv_width = 2;
  plain.conv_on_v = true;
  plain.gate = false;
  plain.normalize = false;
  plain.feature_dim = 6;
  add("plain", tiny(3), plain, 40, 97);
  config::AttentionConfig rope;  // RoPE on the linear path, no conv, LAWCAT on layer 1 only
  rope.conv_width = 0;
  rope.rope = true;
  rope.gate_rank = 4;
  rope.layers = {1};
  add("rope_layer1", tiny(4), rope, 40, 97);
  config::AttentionConfig lolcats;  // LoLCATs: no conv, no gate, window 8
  lolcats.conv_width = 0;
  lolcats.gate = false;
  lolcats.window = 8;
  add("lolcats", tiny(5), lolcats, 40, 97);

  // The quickstart's layer on its real teacher (stories260K: head dim 8, GQA 2:1, window 64).
  const std::filesystem::path data = eval::find_shared_data();
  if (!data.empty() && std::filesystem::exists(data / "models/stories260K/stories260K.bin")) {
    const auto st = data / "models/stories260K";
    io::convert_llama2c(st / "stories260K.bin", st / "tok512.bin", root / "stories_teacher");
    config::AttentionConfig quick;
    quick.window = 64;
    add("stories260k_quickstart", model::load_model(root / "stories_teacher"), quick, 150, 512, root / "stories_teacher");
    students.back().ids[0][0] = students.back().ids[1][0] = students.back().prompt[0] = 1;  // BOS
    write_inputs(students.back());
  } else {
    WARN("../shared/data not found: the stories260K quickstart case is skipped");
  }
  if (const char* extra = std::getenv("LAWCAT_STUDENT_DIR")) {  // an export of `lawcat distill`
    Student s{"env", root / "env", {}, {}, 8};
    std::filesystem::create_directories(s.dir);
    for (const auto& e : std::filesystem::directory_iterator(extra)) std::filesystem::copy(e.path(), s.dir / e.path().filename());
    const int64_t V = io::load_llama_config(s.dir / "config.json").vocab_size;
    s.ids = {random_ids(200, V, 61)};
    s.ids[0][0] = 1;
    s.prompt = {1};
    write_inputs(s);
    students.push_back(s);
  }

  // The export: modeling files and auto_map for students; a plain teacher stays "llama".
  for (const auto& s : students) {
    CAPTURE(s.name);
    CHECK(std::filesystem::exists(s.dir / "modeling_lawcat.py"));
    CHECK(std::filesystem::exists(s.dir / "configuration_lawcat.py"));
    const auto j = nlohmann::json::parse(read_text(s.dir / "config.json"));
    CHECK(j.value("model_type", "") == "lawcat");
    CHECK(j["auto_map"].value("AutoModelForCausalLM", "") == "modeling_lawcat.LawcatForCausalLM");
    CHECK(j["auto_map"].value("AutoConfig", "") == "configuration_lawcat.LawcatConfig");
  }
  {
    auto teacher = tiny(6);
    model::export_model(*teacher, nullptr, root / "teacher_export", {});
    const auto j = nlohmann::json::parse(read_text(root / "teacher_export" / "config.json"));
    CHECK(j.value("model_type", "") == "llama");
    CHECK_FALSE(j.contains("auto_map"));
    CHECK_FALSE(std::filesystem::exists(root / "teacher_export" / "modeling_lawcat.py"));
  }

  std::string cmd = shell_quote(py) + " " +
                    shell_quote(std::string(LAWCAT_SOURCE_DIR) + "/tests/reference/lawcat_student_logits.py") + " " +
                    shell_quote((root / "py.safetensors").string());
  for (const auto& s : students) cmd += " " + shell_quote(s.dir.string());
  const int rc = lawcat::test::run_logged(cmd, (root / "log.txt").string());
  if (rc != 0) FAIL("lawcat_student_logits.py failed (rc " << rc << "):\n" << read_text(root / "log.txt"));
  io::SafetensorsFile ref(root / "py.safetensors");
  for (size_t i = 0; i < students.size(); ++i) {
    const Student& s = students[i];
    CAPTURE(s.name);
    auto m = model::load_model(s.dir, at::kCPU, at::kFloat);  // lawcat's own loader takes the new config.json
    at::NoGradGuard g;
    std::vector<at::Tensor> rows;
    for (auto& r : s.ids) rows.push_back(at::tensor(r, at::kLong));
    const at::Tensor ours = m->forward(at::stack(rows));
    const at::Tensor theirs = ref.load("logits." + std::to_string(i));
    REQUIRE(ours.sizes() == theirs.sizes());
    const double diff = max_abs(ours, theirs);
    WARN(s.name << ": max abs logit difference lawcat vs transformers " << diff << " (logits up to "
                << ours.abs().max().item<double>() << ")");
    CHECK(diff <= 1e-3);
    const auto greedy = eval::greedy_decode(*m, s.prompt, s.new_tokens, {});
    const at::Tensor gen = ref.load("generated." + std::to_string(i));
    std::vector<int64_t> py_tokens(gen.data_ptr<int64_t>(), gen.data_ptr<int64_t>() + gen.numel());
    CHECK(greedy.tokens == py_tokens);
  }
}
