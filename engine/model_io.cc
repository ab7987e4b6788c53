#include "engine/model_io.h"

#include <bit>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/status_macros.h"
#include "nlohmann/json.hpp"

namespace recloop {
namespace {

static_assert(std::endian::native == std::endian::little, "model files are little-endian");

namespace fs = std::filesystem;

// Writes to a temporary name and renames, so a reader never sees a half-written file.
absl::Status WriteFile(const fs::path& path, const void* data, size_t bytes) {
  const fs::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) return absl::InternalError(absl::StrCat(tmp.string(), ": cannot open for writing"));
    out.write(static_cast<const char*>(data), static_cast<std::streamsize>(bytes));
    if (!out.flush()) return absl::InternalError(absl::StrCat(tmp.string(), ": write failed"));
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) return absl::InternalError(absl::StrCat(path.string(), ": ", ec.message()));
  return absl::OkStatus();
}

template <typename T>
absl::Status WriteArray(const fs::path& path, const T* data, size_t n) {
  return WriteFile(path, data, n * sizeof(T));
}

absl::StatusOr<std::string> ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path.string(), ": cannot open"));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

template <typename T>
absl::StatusOr<std::vector<T>> ReadArray(const fs::path& path, size_t expected) {
  ASSIGN_OR_RETURN(std::string bytes, ReadFile(path));
  if (bytes.size() != expected * sizeof(T)) {
    return absl::DataLossError(absl::StrCat(path.string(), ": expected ", expected * sizeof(T),
                                            " bytes, found ", bytes.size()));
  }
  std::vector<T> out(expected);
  if (expected > 0) std::memcpy(out.data(), bytes.data(), bytes.size());
  return out;
}

absl::Status WriteIds(const fs::path& path, const IdMap& ids) {
  std::string text;
  for (const auto& id : ids.externals()) absl::StrAppend(&text, id, "\n");
  return WriteFile(path, text.data(), text.size());
}

absl::StatusOr<IdMap> ReadIds(const fs::path& path, int64_t expected) {
  ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  std::vector<std::string> ids;
  ids.reserve(expected);
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) {
      return absl::DataLossError(absl::StrCat(path.string(), ": truncated (no final newline)"));
    }
    ids.emplace_back(text.substr(start, end - start));
    start = end + 1;
  }
  if (static_cast<int64_t>(ids.size()) != expected) {
    return absl::DataLossError(absl::StrCat(path.string(), ": expected ", expected,
                                            " IDs, found ", ids.size()));
  }
  IdMap map = IdMap::FromExternals(std::move(ids));
  if (map.size() != expected) {
    return absl::DataLossError(absl::StrCat(path.string(), ": duplicate IDs"));
  }
  return map;
}

absl::StatusOr<FactorMatrix> ReadMatrix(const fs::path& path, int64_t rows, int64_t cols) {
  ASSIGN_OR_RETURN(auto v, ReadArray<float>(path, rows * cols));
  return FactorMatrix(Eigen::Map<FactorMatrix>(v.data(), rows, cols));
}

absl::StatusOr<Eigen::VectorXf> ReadVector(const fs::path& path, int64_t n) {
  ASSIGN_OR_RETURN(auto v, ReadArray<float>(path, n));
  return Eigen::VectorXf(Eigen::Map<Eigen::VectorXf>(v.data(), n));
}

}  // namespace

absl::Status SaveModel(const FactorModel& m, const std::string& dir_name) {
  const fs::path dir(dir_name);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat(dir_name, ": ", ec.message()));
  const auto& p = m.params;
  nlohmann::json meta = {
      {"format_version", kModelFormatVersion},
      {"algorithm", ToString(p.algorithm)},
      {"feedback", ToString(p.feedback)},
      {"factors", p.factors},
      {"iterations", p.iterations},
      {"regularization", p.regularization},
      {"bias_regularization", p.bias_regularization},
      {"alpha", p.alpha},
      {"cg_steps", p.cg_steps},
      {"cholesky", p.cholesky},
      {"seed", p.seed},
      {"users", m.num_users()},
      {"items", m.num_items()},
      {"has_factors", m.has_factors()},
      {"has_biases", m.has_biases()},
      {"global_mean", m.global_mean},
      {"min_value", m.min_value},
      {"max_value", m.max_value},
      {"seen_nnz", m.seen.nnz()},
  };
  RETURN_IF_ERROR(WriteIds(dir / "users.txt", m.users));
  RETURN_IF_ERROR(WriteIds(dir / "items.txt", m.items));
  if (m.has_factors()) {
    RETURN_IF_ERROR(WriteArray(dir / "user_factors.f32", m.user_factors.data(),
                               m.user_factors.size()));
    RETURN_IF_ERROR(WriteArray(dir / "item_factors.f32", m.item_factors.data(),
                               m.item_factors.size()));
  }
  if (m.has_biases()) {
    RETURN_IF_ERROR(WriteArray(dir / "user_bias.f32", m.user_bias.data(), m.user_bias.size()));
    RETURN_IF_ERROR(WriteArray(dir / "item_bias.f32", m.item_bias.data(), m.item_bias.size()));
  }
  RETURN_IF_ERROR(WriteArray(dir / "item_popularity.f32", m.item_popularity.data(),
                             m.item_popularity.size()));
  RETURN_IF_ERROR(WriteArray(dir / "seen_indptr.i64", m.seen.indptr().data(),
                             m.seen.indptr().size()));
  RETURN_IF_ERROR(WriteArray(dir / "seen_indices.i32", m.seen.indices().data(),
                             m.seen.indices().size()));
  RETURN_IF_ERROR(WriteArray(dir / "seen_values.f32", m.seen.values().data(),
                             m.seen.values().size()));
  // model.json last: its presence marks a complete model.
  const std::string text = meta.dump(2) + "\n";
  return WriteFile(dir / "model.json", text.data(), text.size());
}

absl::StatusOr<FactorModel> LoadModel(const std::string& dir_name) {
  const fs::path dir(dir_name);
  ASSIGN_OR_RETURN(std::string text, ReadFile(dir / "model.json"));
  const std::string meta_path = (dir / "model.json").string();
  FactorModel m;
  int64_t users = 0, items = 0, seen_nnz = 0;
  bool has_factors = false, has_biases = false;
  try {
    const auto meta = nlohmann::json::parse(text);
    const int version = meta.at("format_version").get<int>();
    if (version != kModelFormatVersion) {
      return absl::FailedPreconditionError(absl::StrCat(meta_path, ": format version ", version,
                                                        " is not supported (expected ",
                                                        kModelFormatVersion, ")"));
    }
    auto& p = m.params;
    ASSIGN_OR_RETURN(p.algorithm, ParseAlgorithm(meta.at("algorithm").get<std::string>()));
    ASSIGN_OR_RETURN(p.feedback, ParseFeedback(meta.at("feedback").get<std::string>()));
    p.factors = meta.at("factors").get<int>();
    p.iterations = meta.at("iterations").get<int>();
    p.regularization = meta.at("regularization").get<float>();
    p.bias_regularization = meta.at("bias_regularization").get<float>();
    p.alpha = meta.at("alpha").get<float>();
    p.cg_steps = meta.at("cg_steps").get<int>();
    p.cholesky = meta.at("cholesky").get<bool>();
    p.seed = meta.at("seed").get<uint64_t>();
    users = meta.at("users").get<int64_t>();
    items = meta.at("items").get<int64_t>();
    has_factors = meta.at("has_factors").get<bool>();
    has_biases = meta.at("has_biases").get<bool>();
    m.global_mean = meta.at("global_mean").get<float>();
    m.min_value = meta.at("min_value").get<float>();
    m.max_value = meta.at("max_value").get<float>();
    seen_nnz = meta.at("seen_nnz").get<int64_t>();
  } catch (const nlohmann::json::exception& e) {
    return absl::DataLossError(absl::StrCat(meta_path, ": ", e.what()));
  }
  if (users < 0 || items < 0 || seen_nnz < 0 || m.params.factors < 0) {
    return absl::DataLossError(absl::StrCat(meta_path, ": negative shape"));
  }
  ASSIGN_OR_RETURN(m.users, ReadIds(dir / "users.txt", users));
  ASSIGN_OR_RETURN(m.items, ReadIds(dir / "items.txt", items));
  if (has_factors) {
    ASSIGN_OR_RETURN(m.user_factors,
                     ReadMatrix(dir / "user_factors.f32", users, m.params.factors));
    ASSIGN_OR_RETURN(m.item_factors,
                     ReadMatrix(dir / "item_factors.f32", items, m.params.factors));
  }
  if (has_biases) {
    ASSIGN_OR_RETURN(m.user_bias, ReadVector(dir / "user_bias.f32", users));
    ASSIGN_OR_RETURN(m.item_bias, ReadVector(dir / "item_bias.f32", items));
  }
  ASSIGN_OR_RETURN(m.item_popularity, ReadVector(dir / "item_popularity.f32", items));
  ASSIGN_OR_RETURN(auto indptr, ReadArray<int64_t>(dir / "seen_indptr.i64", users + 1));
  ASSIGN_OR_RETURN(auto indices, ReadArray<int32_t>(dir / "seen_indices.i32", seen_nnz));
  ASSIGN_OR_RETURN(auto values, ReadArray<float>(dir / "seen_values.f32", seen_nnz));
  // Structural check, so that a corrupted index array cannot send a reader out of bounds.
  const std::string seen_path = (dir / "seen_indptr.i64").string();
  if (indptr[0] != 0 || indptr[users] != seen_nnz) {
    return absl::DataLossError(absl::StrCat(seen_path, ": inconsistent row pointers"));
  }
  for (int64_t r = 0; r < users; ++r) {
    if (indptr[r + 1] < indptr[r]) {
      return absl::DataLossError(absl::StrCat(seen_path, ": row pointers decrease at row ", r));
    }
  }
  for (int32_t c : indices) {
    if (c < 0 || c >= items) {
      return absl::DataLossError(
          absl::StrCat((dir / "seen_indices.i32").string(), ": item index out of range"));
    }
  }
  m.seen = CsrMatrix::FromArrays(static_cast<int32_t>(users), static_cast<int32_t>(items),
                                 std::move(indptr), std::move(indices), std::move(values));
  return m;
}

}  // namespace recloop
