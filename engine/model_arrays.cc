// Writing and reading the array files of a model version (format in model_io.h).
#include "engine/model_arrays.h"

#include <fcntl.h>
#include <unistd.h>
#include <xxhash.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <span>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/mapped_file.h"
#include "base/posix_file.h"
#include "engine/status_macros.h"

namespace recloop::model_internal {
namespace {

// Writes one array file and records it in the metadata.
absl::Status WriteArray(const fs::path& dir, const std::string& name, const std::string& dtype,
                        std::vector<int64_t> shape, std::span<const char> bytes,
                        pb::ModelMetadata* meta) {
  RETURN_IF_ERROR(WriteFileSynced((dir / name).string(), bytes));
  pb::ArrayFile* f = meta->add_files();
  f->set_name(name);
  f->set_dtype(dtype);
  for (int64_t d : shape) f->add_shape(d);
  f->set_bytes(static_cast<int64_t>(bytes.size()));
  f->set_xxh64(Hash(bytes.data(), bytes.size()));
  return absl::OkStatus();
}

// A file written piece by piece (hashed as it goes), for arrays that are never in memory whole.
class StreamedArray {
 public:
  StreamedArray(fs::path path, std::string name, std::string dtype)
      : path_(std::move(path)), name_(std::move(name)), dtype_(std::move(dtype)),
        fd_(::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)),
        state_(XXH64_createState()) {
    XXH64_reset(state_, 0);
  }
  ~StreamedArray() { XXH64_freeState(state_); }
  StreamedArray(const StreamedArray&) = delete;
  StreamedArray& operator=(const StreamedArray&) = delete;

  absl::Status Append(std::span<const char> bytes) {
    if (fd_.get() < 0) return absl::InternalError(ErrnoMessage(path_.string(), errno));
    XXH64_update(state_, bytes.data(), bytes.size());
    RETURN_IF_ERROR(WriteFully(fd_.get(), bytes, path_.string()));
    bytes_ += static_cast<int64_t>(bytes.size());
    return absl::OkStatus();
  }

  // Fsyncs the file and records it in `meta` with `elements` entries.
  absl::Status Finish(int64_t elements, pb::ModelMetadata* meta) {
    if (fd_.get() < 0) return absl::InternalError(ErrnoMessage(path_.string(), errno));
    if (::fsync(fd_.get()) != 0) {
      return absl::InternalError(ErrnoMessage(absl::StrCat(path_.string(), ": fsync"), errno));
    }
    pb::ArrayFile* f = meta->add_files();
    f->set_name(name_);
    f->set_dtype(dtype_);
    f->add_shape(elements);
    f->set_bytes(bytes_);
    f->set_xxh64(XXH64_digest(state_));
    return absl::OkStatus();
  }

 private:
  fs::path path_;
  std::string name_, dtype_;
  ScopedFd fd_;
  XXH64_state_t* state_;
  int64_t bytes_ = 0;
};

// The seen matrix from `source`, block by block, as WriteArrays writes a whole one.
absl::Status WriteStreamedSeen(const FactorModel& m, const fs::path& dir,
                               const std::function<absl::StatusOr<SeenRows>()>& source,
                               pb::ModelMetadata* meta) {
  StreamedArray indptr_file(dir / "seen_indptr.i64", "seen_indptr.i64", "i64");
  StreamedArray indices_file(dir / "seen_indices.i32", "seen_indices.i32", "i32");
  StreamedArray values_file(dir / "seen_values.f32", "seen_values.f32", "f32");
  const int64_t users = m.num_users(), items = m.num_items();
  int64_t rows = 0, nnz = 0;
  const int64_t zero = 0;
  RETURN_IF_ERROR(indptr_file.Append(AsBytes(&zero, 1)));
  std::vector<int64_t> indptr;
  while (rows < users) {
    ASSIGN_OR_RETURN(SeenRows block, source());
    int64_t entries = 0;
    for (int64_t n : block.row_sizes) entries += n;
    if (block.row_sizes.empty() && users > rows) {
      return absl::InvalidArgumentError(absl::StrCat("seen rows: the source ended after ", rows,
                                                     " of ", users, " rows"));
    }
    if (rows + static_cast<int64_t>(block.row_sizes.size()) > users ||
        entries != static_cast<int64_t>(block.indices.size()) ||
        block.values.size() != block.indices.size()) {
      return absl::InvalidArgumentError("seen rows: a block does not match the model's shape");
    }
    for (int32_t c : block.indices) {
      if (c < 0 || c >= items) {
        return absl::InvalidArgumentError("seen rows: an item index is out of range");
      }
    }
    indptr.clear();
    for (int64_t n : block.row_sizes) indptr.push_back(nnz += n);
    rows += static_cast<int64_t>(block.row_sizes.size());
    RETURN_IF_ERROR(indptr_file.Append(AsBytes(indptr.data(), indptr.size())));
    RETURN_IF_ERROR(indices_file.Append(AsBytes(block.indices.data(), block.indices.size())));
    RETURN_IF_ERROR(values_file.Append(AsBytes(block.values.data(), block.values.size())));
  }
  RETURN_IF_ERROR(indptr_file.Finish(users + 1, meta));
  RETURN_IF_ERROR(indices_file.Finish(nnz, meta));
  RETURN_IF_ERROR(values_file.Finish(nnz, meta));
  meta->set_seen_nnz(nnz);
  return absl::OkStatus();
}

absl::Status WriteIds(const fs::path& dir, const std::string& name, const IdMap& ids,
                      pb::ModelMetadata* meta) {
  std::string text;
  for (const auto& id : ids.externals()) {
    // One ID per line: a newline inside an ID would shift every later index.
    if (id.find('\n') != std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, ": external ID '", id, "' contains a newline"));
    }
    absl::StrAppend(&text, id, "\n");
  }
  return WriteArray(dir, name, "lines", {ids.size()}, {text.data(), text.size()}, meta);
}

const pb::ArrayFile* FindFile(const pb::ModelMetadata& meta, const std::string& name) {
  for (const auto& f : meta.files()) {
    if (f.name() == name) return &f;
  }
  return nullptr;
}

// Maps the file `name`, checks that the metadata lists it with `dtype` and `shape` and that its
// size and checksum match. elem_size is the byte size of one element (1 for "lines", where the
// size is not implied by the shape).
absl::StatusOr<MappedFile> OpenChecked(const fs::path& dir, const pb::ModelMetadata& meta,
                                       const std::string& name, const std::string& dtype,
                                       const std::vector<int64_t>& shape, size_t elem_size) {
  const std::string path = (dir / name).string();
  const pb::ArrayFile* f = FindFile(meta, name);
  if (f == nullptr) {
    return absl::DataLossError(
        absl::StrCat((dir / kMetadataFile).string(), ": does not list ", name));
  }
  bool shape_ok = f->dtype() == dtype && f->shape_size() == static_cast<int>(shape.size());
  for (size_t i = 0; shape_ok && i < shape.size(); ++i) shape_ok = f->shape(i) == shape[i];
  if (!shape_ok) {
    return absl::DataLossError(absl::StrCat(path,
                                            ": metadata lists dtype/shape that does not "
                                            "match the model's counts"));
  }
  if (dtype != "lines") {
    int64_t expected = static_cast<int64_t>(elem_size);
    for (int64_t d : shape) expected *= d;
    if (f->bytes() != expected) {
      return absl::DataLossError(
          absl::StrCat(path, ": metadata size ", f->bytes(), " bytes does not match its shape"));
    }
  }
  ASSIGN_OR_RETURN(MappedFile file, MappedFile::Open(path));
  if (static_cast<int64_t>(file.size()) != f->bytes()) {
    return absl::DataLossError(absl::StrCat(
        path, ": ", static_cast<int64_t>(file.size()) < f->bytes() ? "truncated" : "too long",
        " (expected ", f->bytes(), " bytes, found ", file.size(), ")"));
  }
  if (Hash(file.data(), file.size()) != f->xxh64()) {
    return absl::DataLossError(absl::StrCat(path, ": checksum mismatch (corrupted)"));
  }
  return file;
}

template <typename T>
absl::StatusOr<std::vector<T>> ReadVectorFile(const fs::path& dir, const pb::ModelMetadata& meta,
                                              const std::string& name, const std::string& dtype,
                                              int64_t n) {
  ASSIGN_OR_RETURN(MappedFile file, OpenChecked(dir, meta, name, dtype, {n}, sizeof(T)));
  std::vector<T> out(static_cast<size_t>(n));
  if (n > 0) std::memcpy(out.data(), file.data(), file.size());
  return out;
}

absl::StatusOr<FactorMatrix> ReadMatrixFile(const fs::path& dir, const pb::ModelMetadata& meta,
                                            const std::string& name, int64_t rows, int64_t cols) {
  ASSIGN_OR_RETURN(MappedFile file, OpenChecked(dir, meta, name, "f32", {rows, cols}, 4));
  FactorMatrix m(rows, cols);
  if (file.size() > 0) std::memcpy(m.data(), file.data(), file.size());
  return m;
}

absl::StatusOr<Eigen::VectorXf> ReadFloatVector(const fs::path& dir, const pb::ModelMetadata& meta,
                                                const std::string& name, int64_t n) {
  ASSIGN_OR_RETURN(MappedFile file, OpenChecked(dir, meta, name, "f32", {n}, 4));
  Eigen::VectorXf v(n);
  if (file.size() > 0) std::memcpy(v.data(), file.data(), file.size());
  return v;
}

absl::StatusOr<IdMap> ReadIdsFile(const fs::path& dir, const pb::ModelMetadata& meta,
                                  const std::string& name, int64_t n) {
  ASSIGN_OR_RETURN(MappedFile file, OpenChecked(dir, meta, name, "lines", {n}, 1));
  const std::string path = (dir / name).string();
  std::vector<std::string> ids;
  ids.reserve(static_cast<size_t>(n));
  std::string_view text(file.data(), file.size());
  size_t start = 0;
  while (start < text.size()) {
    const size_t end = text.find('\n', start);
    if (end == std::string_view::npos) {
      return absl::DataLossError(absl::StrCat(path, ": truncated (no final newline)"));
    }
    ids.emplace_back(text.substr(start, end - start));
    start = end + 1;
  }
  if (static_cast<int64_t>(ids.size()) != n) {
    return absl::DataLossError(absl::StrCat(path, ": expected ", n, " IDs, found ", ids.size()));
  }
  IdMap map = IdMap::FromExternals(std::move(ids));
  if (map.size() != n) return absl::DataLossError(absl::StrCat(path, ": duplicate IDs"));
  return map;
}

}  // namespace

absl::StatusOr<pb::ModelMetadata> WriteArrays(const FactorModel& m, const fs::path& dir,
                                              const SaveModelOptions& options) {
  pb::ModelMetadata meta = MetadataOf(m);
  const int64_t users = m.num_users(), items = m.num_items();
  RETURN_IF_ERROR(WriteIds(dir, "users.txt", m.users, &meta));
  RETURN_IF_ERROR(WriteIds(dir, "items.txt", m.items, &meta));
  if (m.has_factors()) {
    const int64_t k = m.user_factors.cols();
    RETURN_IF_ERROR(WriteArray(dir, "user_factors.f32", "f32", {users, k},
                               AsBytes(m.user_factors.data(), m.user_factors.size()), &meta));
    RETURN_IF_ERROR(WriteArray(dir, "item_factors.f32", "f32", {items, k},
                               AsBytes(m.item_factors.data(), m.item_factors.size()), &meta));
  }
  if (m.params.algorithm == Algorithm::kBpmf) {
    for (const auto& [name, prior] : {std::pair{"bpmf_user_prior.f32", &m.user_prior},
                                      std::pair{"bpmf_item_prior.f32", &m.item_prior}}) {
      RETURN_IF_ERROR(WriteArray(dir, name, "f32", {prior->rows(), prior->cols()},
                                 AsBytes(prior->data(), prior->size()), &meta));
    }
  }
  if (m.has_biases()) {
    RETURN_IF_ERROR(WriteArray(dir, "user_bias.f32", "f32", {users},
                               AsBytes(m.user_bias.data(), m.user_bias.size()), &meta));
    RETURN_IF_ERROR(WriteArray(dir, "item_bias.f32", "f32", {items},
                               AsBytes(m.item_bias.data(), m.item_bias.size()), &meta));
  }
  RETURN_IF_ERROR(WriteArray(dir, "item_popularity.f32", "f32", {m.item_popularity.size()},
                             AsBytes(m.item_popularity.data(), m.item_popularity.size()), &meta));
  if (options.seen_source) {
    RETURN_IF_ERROR(WriteStreamedSeen(m, dir, options.seen_source, &meta));
    return meta;
  }
  const auto& indptr = m.seen.indptr();
  const auto& indices = m.seen.indices();
  const auto& values = m.seen.values();
  RETURN_IF_ERROR(WriteArray(dir, "seen_indptr.i64", "i64", {static_cast<int64_t>(indptr.size())},
                             AsBytes(indptr.data(), indptr.size()), &meta));
  RETURN_IF_ERROR(WriteArray(dir, "seen_indices.i32", "i32", {static_cast<int64_t>(indices.size())},
                             AsBytes(indices.data(), indices.size()), &meta));
  RETURN_IF_ERROR(WriteArray(dir, "seen_values.f32", "f32", {static_cast<int64_t>(values.size())},
                             AsBytes(values.data(), values.size()), &meta));
  return meta;
}

absl::Status ReadArrays(const fs::path& dir, const pb::ModelMetadata& meta,
                        const std::string& meta_path, FactorModel* m) {
  const ModelParams& p = m->params;
  const int64_t users = meta.users(), items = meta.items(), nnz = meta.seen_nnz();
  ASSIGN_OR_RETURN(m->users, ReadIdsFile(dir, meta, "users.txt", users));
  ASSIGN_OR_RETURN(m->items, ReadIdsFile(dir, meta, "items.txt", items));
  if (meta.has_factors()) {
    const pb::ArrayFile* uf = FindFile(meta, "user_factors.f32");
    const int64_t k = uf != nullptr && uf->shape_size() == 2 ? uf->shape(1) : p.factors;
    const int64_t expected =
        p.algorithm == Algorithm::kBpmf ? int64_t{p.factors} * p.served_samples : p.factors;
    if (k <= 0 || (p.algorithm != Algorithm::kPopular && k != expected)) {
      return absl::DataLossError(absl::StrCat(meta_path, ": factor matrices have ", k,
                                              " columns, hyper-parameters say ", expected));
    }
    ASSIGN_OR_RETURN(m->user_factors, ReadMatrixFile(dir, meta, "user_factors.f32", users, k));
    ASSIGN_OR_RETURN(m->item_factors, ReadMatrixFile(dir, meta, "item_factors.f32", items, k));
    if (p.algorithm == Algorithm::kBpmf) {
      const int64_t width = 2 + int64_t{p.factors} + int64_t{p.factors} * p.factors;
      ASSIGN_OR_RETURN(m->user_prior, ReadMatrixFile(dir, meta, "bpmf_user_prior.f32",
                                                    p.served_samples, width));
      ASSIGN_OR_RETURN(m->item_prior, ReadMatrixFile(dir, meta, "bpmf_item_prior.f32",
                                                    p.served_samples, width));
    }
  }
  if (meta.has_biases()) {
    ASSIGN_OR_RETURN(m->user_bias, ReadFloatVector(dir, meta, "user_bias.f32", users));
    ASSIGN_OR_RETURN(m->item_bias, ReadFloatVector(dir, meta, "item_bias.f32", items));
  }
  // A model may carry no popularity (empty vector); otherwise it has one entry per item.
  const pb::ArrayFile* pop = FindFile(meta, "item_popularity.f32");
  const int64_t pop_n = pop != nullptr && pop->shape_size() == 1 && pop->shape(0) == 0 ? 0 : items;
  ASSIGN_OR_RETURN(m->item_popularity, ReadFloatVector(dir, meta, "item_popularity.f32", pop_n));

  ASSIGN_OR_RETURN(auto indptr,
                   ReadVectorFile<int64_t>(dir, meta, "seen_indptr.i64", "i64", users + 1));
  ASSIGN_OR_RETURN(auto indices,
                   ReadVectorFile<int32_t>(dir, meta, "seen_indices.i32", "i32", nnz));
  ASSIGN_OR_RETURN(auto values, ReadVectorFile<float>(dir, meta, "seen_values.f32", "f32", nnz));
  // The checksums cover accidental corruption; this structural check also keeps a deliberately
  // edited (re-checksummed) file from sending a reader out of bounds.
  const std::string seen_path = (dir / "seen_indptr.i64").string();
  if (indptr[0] != 0 || indptr[users] != nnz) {
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
  m->seen = CsrMatrix::FromArrays(static_cast<int32_t>(users), static_cast<int32_t>(items),
                                 std::move(indptr), std::move(indices), std::move(values));
  return absl::OkStatus();
}

}  // namespace recloop::model_internal
