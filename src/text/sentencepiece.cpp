// SentencePiece tokenizer.model (Llama 2, Mistral, TinyLlama) through liblawcat_spm_shim.so.
//
// Why dlmopen: Debian's libsentencepiece links its own protobuf; LibTorch has another.
// Loaded normally, both copies share one symbol namespace and the process crashes
// (duplicate descriptor registration / mixed-up symbols). dlmopen(LM_ID_NEWLM) gives
// the shim, sentencepiece, protobuf and their libstdc++ a link namespace of their own;
// we reach it only through the C functions of spm_shim.h, resolved with dlsym.
// The namespace is opened once per process and never closed (namespaces are few: 16).
#include <dlfcn.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <unordered_map>

#include "text/spm_shim/spm_shim.h"
#include "text/tokenizer_impl.h"
#include "text/unicode.h"
#include "util/error.h"
#include "util/log.h"

namespace lawcat::text {
namespace {

constexpr const char* kShimName = "liblawcat_spm_shim.so";

// Function table of the shim (one per process).
struct ShimApi {
  std::string path;
  decltype(&lawcat_spm_abi_version) abi_version = nullptr;
  decltype(&lawcat_spm_load) load = nullptr;
  decltype(&lawcat_spm_free) free = nullptr;
  decltype(&lawcat_spm_encode) encode = nullptr;
  decltype(&lawcat_spm_decode) decode = nullptr;
  decltype(&lawcat_spm_vocab_size) vocab_size = nullptr;
  decltype(&lawcat_spm_bos_id) bos_id = nullptr;
  decltype(&lawcat_spm_eos_id) eos_id = nullptr;
  decltype(&lawcat_spm_unk_id) unk_id = nullptr;
  decltype(&lawcat_spm_pad_id) pad_id = nullptr;
  decltype(&lawcat_spm_id_to_piece) id_to_piece = nullptr;
  decltype(&lawcat_spm_piece_to_id) piece_to_id = nullptr;
  decltype(&lawcat_spm_piece_kind) piece_kind = nullptr;
  decltype(&lawcat_spm_free_ids) free_ids = nullptr;
  decltype(&lawcat_spm_free_string) free_string = nullptr;
};

// Where to look for the shim: $LAWCAT_SPM_SHIM alone when set; otherwise the path
// the build recorded, then beside (and above) the running executable.
std::vector<std::filesystem::path> shim_candidates() {
  if (const char* env = std::getenv("LAWCAT_SPM_SHIM"); env && *env) return {env};
  std::vector<std::filesystem::path> out;
#ifdef LAWCAT_SPM_SHIM_PATH
  out.emplace_back(LAWCAT_SPM_SHIM_PATH);
#endif
  std::error_code ec;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    auto dir = exe.parent_path();
    out.push_back(dir / kShimName);
    out.push_back(dir.parent_path() / kShimName);
    out.push_back(dir.parent_path() / "lib" / kShimName);
  }
  return out;
}

// Opens the shim in a new link namespace; on failure, returns why in `why`.
bool open_shim(const std::filesystem::path& path, ShimApi& api, std::string& why) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    why = "not found";
    return false;
  }
  dlerror();
  void* h = dlmopen(LM_ID_NEWLM, path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    const char* e = dlerror();
    why = std::string("dlmopen failed: ") + (e ? e : "unknown error");
    return false;
  }
  std::string missing;
  auto sym = [&](auto& fn, const char* name) {
    fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(h, name));
    if (!fn) missing += std::string(missing.empty() ? "" : ", ") + name;
  };
  sym(api.abi_version, "lawcat_spm_abi_version");
  sym(api.load, "lawcat_spm_load");
  sym(api.free, "lawcat_spm_free");
  sym(api.encode, "lawcat_spm_encode");
  sym(api.decode, "lawcat_spm_decode");
  sym(api.vocab_size, "lawcat_spm_vocab_size");
  sym(api.bos_id, "lawcat_spm_bos_id");
  sym(api.eos_id, "lawcat_spm_eos_id");
  sym(api.unk_id, "lawcat_spm_unk_id");
  sym(api.pad_id, "lawcat_spm_pad_id");
  sym(api.id_to_piece, "lawcat_spm_id_to_piece");
  sym(api.piece_to_id, "lawcat_spm_piece_to_id");
  sym(api.piece_kind, "lawcat_spm_piece_kind");
  sym(api.free_ids, "lawcat_spm_free_ids");
  sym(api.free_string, "lawcat_spm_free_string");
  if (!missing.empty()) {
    why = "missing symbols: " + missing;
    return false;  // the namespace stays open: dlclose of a namespace is not reliable
  }
  if (int v = api.abi_version(); v != LAWCAT_SPM_SHIM_ABI) {
    why = "interface version " + std::to_string(v) + ", expected " +
          std::to_string(LAWCAT_SPM_SHIM_ABI) + " (stale build?)";
    return false;
  }
  api.path = path.string();
  return true;
}

// The process-wide shim; throws DataError (the same one every time) when it cannot be loaded.
const ShimApi& shim() {
  static std::mutex mu;
  static std::unique_ptr<ShimApi> api;
  static std::string failure;
  std::lock_guard<std::mutex> lock(mu);
  if (api) return *api;
  if (!failure.empty()) throw DataError(failure);
  std::string tried;
  for (const auto& path : shim_candidates()) {
    auto candidate = std::make_unique<ShimApi>();
    std::string why;
    if (open_shim(path, *candidate, why)) {
      log::debug("SentencePiece shim loaded from ", path.string());
      api = std::move(candidate);
      return *api;
    }
    tried += "\n  " + path.string() + ": " + why;
  }
  failure = std::string("SentencePiece support unavailable: cannot load ") + kShimName +
#ifndef LAWCAT_SPM_SHIM_PATH
            " (this build has no sentencepiece: install libsentencepiece-dev and re-run cmake)" +
#endif
            "; tried:" + (tried.empty() ? std::string(" nothing") : tried) +
            "\n  hint: set LAWCAT_SPM_SHIM to the path of " + kShimName;
  throw DataError(failure);
}

// An error text owned by the shim, copied and released.
std::string take_error(const ShimApi& api, char* err) {
  std::string s = err ? err : "unknown error";
  if (err) api.free_string(err);
  return s;
}

const std::string kSpace = "\xE2\x96\x81";          // U+2581, SentencePiece's space
const std::string kUnkSurface = " \xE2\x81\x87 ";   // SentencePiece's default " ⁇ "

class SentencePieceTokenizer : public detail::TokenizerBase {
 public:
  SentencePieceTokenizer(const ShimApi& api, const std::filesystem::path& file)
      : api_(api), file_(file) {
    char* err = nullptr;
    handle_ = api_.load(file.c_str(), &err);
    LAWCAT_CHECK(handle_, DataError,
                 file.string() << ": not a valid SentencePiece model (" << take_error(api_, err)
                               << ")");
    const int32_t n = api_.vocab_size(handle_);
    pieces_.resize(n);
    kinds_.resize(n);
    for (int32_t id = 0; id < n; ++id) {
      size_t len = 0;
      const char* p = api_.id_to_piece(handle_, id, &len);
      pieces_[id] = p ? std::string(p, len) : std::string();
      kinds_[id] = static_cast<int8_t>(api_.piece_kind(handle_, id));
      piece_ids_.emplace(pieces_[id], id);
    }
    bos_ = api_.bos_id(handle_);
    eos_ = api_.eos_id(handle_);
    if (bos_ >= n) bos_ = -1;
    if (eos_ >= n) eos_ = -1;
    log::debug("SentencePiece ", file.string(), ": ", n, " pieces, bos ", bos_, ", eos ", eos_);
  }
  ~SentencePieceTokenizer() override {
    if (handle_) api_.free(handle_);
  }

  std::vector<int64_t> encode(const std::string& text, bool add_bos, bool add_eos) const override {
    int32_t* ids = nullptr;
    size_t n = 0;
    char* err = nullptr;
    if (api_.encode(handle_, text.data(), text.size(), &ids, &n, &err) != 0)
      throw DataError(file_.string() + ": SentencePiece encode failed: " + take_error(api_, err));
    std::vector<int64_t> body(ids, ids + n);
    api_.free_ids(ids);
    return wrap(body, add_bos, add_eos);
  }

  std::string decode(const std::vector<int64_t>& ids) const override {
    std::vector<int32_t> keep;
    keep.reserve(ids.size());
    for (size_t i = 0; i < ids.size(); ++i) {
      check_id(ids[i], i);
      if (!is_special(ids[i])) keep.push_back(static_cast<int32_t>(ids[i]));
    }
    char* out = nullptr;
    size_t len = 0;
    char* err = nullptr;
    if (api_.decode(handle_, keep.data(), keep.size(), &out, &len, &err) != 0)
      throw DataError(file_.string() + ": SentencePiece decode failed: " + take_error(api_, err));
    std::string text(out, len);
    api_.free_string(out);
    return text;
  }

  std::string decode_piece(int64_t prev, int64_t id) const override {
    check_id(id, 0);
    if (is_special(id)) return {};
    const std::string& p = pieces_[id];
    switch (kinds_[id]) {
      case LAWCAT_SPM_CONTROL: return {};
      case LAWCAT_SPM_UNKNOWN: return kUnkSurface;
      case LAWCAT_SPM_BYTE: {
        unsigned v = 0;
        if (p.size() == 6 && std::sscanf(p.c_str(), "<0x%2X>", &v) == 1) return std::string(1, static_cast<char>(v));
        return p;
      }
      default: break;
    }
    std::string s;
    s.reserve(p.size());
    for (size_t i = 0; i < p.size();) {
      if (p.compare(i, kSpace.size(), kSpace) == 0) {
        s += ' ';
        i += kSpace.size();
      } else {
        s += p[i++];
      }
    }
    // SentencePiece removes the space it prepended to the text: at the start or after BOS.
    if ((prev < 0 || prev == bos_) && !s.empty() && s[0] == ' ') s.erase(0, 1);
    return s;
  }

  int64_t vocab_size() const override { return static_cast<int64_t>(pieces_.size()); }
  std::string kind() const override { return "sentencepiece"; }
  std::string id_to_piece(int64_t id) const override {
    return id >= 0 && id < vocab_size() ? pieces_[id] : std::string();
  }
  int64_t piece_to_id(const std::string& piece) const override {
    auto it = piece_ids_.find(piece);
    return it == piece_ids_.end() ? -1 : it->second;
  }

 protected:
  bool is_control(int64_t id) const override {
    return id >= 0 && id < vocab_size() && kinds_[id] == LAWCAT_SPM_CONTROL;
  }

 private:
  void check_id(int64_t id, size_t pos) const {
    LAWCAT_CHECK(id >= 0 && id < vocab_size(), DataError,
                 file_.string() << ": cannot decode id " << id << " at position " << pos
                                << ": outside the vocabulary [0, " << vocab_size() << ")");
  }

  const ShimApi& api_;
  std::filesystem::path file_;
  lawcat_spm* handle_ = nullptr;
  std::vector<std::string> pieces_;  // [V] piece text
  std::vector<int8_t> kinds_;        // [V] LAWCAT_SPM_* kind
  std::unordered_map<std::string, int64_t> piece_ids_;
};

}  // namespace

namespace detail {
std::unique_ptr<TokenizerBase> make_sentencepiece(const std::filesystem::path& model_file) {
  std::error_code ec;
  LAWCAT_CHECK(std::filesystem::is_regular_file(model_file, ec), DataError,
               model_file.string() << ": SentencePiece model not found");
  const ShimApi* api = nullptr;
  try {
    api = &shim();
  } catch (const DataError& e) {
    throw DataError(model_file.string() + ": cannot read this SentencePiece model: " + e.what());
  }
  return std::make_unique<SentencePieceTokenizer>(*api, model_file);
}
}  // namespace detail

std::unique_ptr<Tokenizer> load_sentencepiece(const std::filesystem::path& model_file) {
  return detail::make_sentencepiece(model_file);
}

}  // namespace lawcat::text
