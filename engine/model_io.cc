#include "engine/model_io.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <bit>
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <exception>
#include <filesystem>
#include <random>
#include <span>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/model.pb.h"
#include "engine/status_macros.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/json_util.h"

#ifndef RECLOOP_VERSION
#define RECLOOP_VERSION "unknown"
#endif

namespace recloop {
namespace {

static_assert(std::endian::native == std::endian::little, "model files are little-endian");

namespace fs = std::filesystem;

constexpr char kMetadataFile[] = "model.pb";
constexpr char kCurrent[] = "current";
constexpr char kTmpPrefix[] = ".tmp-";
constexpr char kMagic[8] = {'R', 'C', 'L', 'M', 'O', 'D', 'E', 'L'};
constexpr size_t kHeaderBytes = 32;
constexpr int kVersionDigits = 6;
constexpr int64_t kMaxVersion = 999999;

std::string ErrnoMessage(const std::string& what, int err) {
  return absl::StrCat(what, ": ", std::strerror(err));
}

// Closes a file descriptor on scope exit.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

absl::Status FsyncPath(const fs::path& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return absl::InternalError(ErrnoMessage(path.string(), errno));
  if (::fsync(fd.get()) != 0) {
    return absl::InternalError(ErrnoMessage(absl::StrCat(path.string(), ": fsync"), errno));
  }
  return absl::OkStatus();
}

// Writes a new file and fsyncs it. The version directory it lands in is itself temporary, so
// no per-file rename is needed.
// Writes all of `bytes` to `fd` (the file at `path`, for messages).
absl::Status WriteAll(int fd, std::span<const char> bytes, const fs::path& path) {
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::InternalError(ErrnoMessage(absl::StrCat(path.string(), ": write"), errno));
    }
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::Status WriteFileSync(const fs::path& path, std::span<const char> bytes) {
  Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (fd.get() < 0) return absl::InternalError(ErrnoMessage(path.string(), errno));
  RETURN_IF_ERROR(WriteAll(fd.get(), bytes, path));
  if (::fsync(fd.get()) != 0) {
    return absl::InternalError(ErrnoMessage(absl::StrCat(path.string(), ": fsync"), errno));
  }
  return absl::OkStatus();
}

// A read-only mapping of a whole file; empty files are not mapped (mmap rejects length 0).
class MappedFile {
 public:
  static absl::StatusOr<MappedFile> Open(const fs::path& path) {
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) {
      const int err = errno;
      if (err == ENOENT) return absl::NotFoundError(absl::StrCat(path.string(), ": missing"));
      return absl::InternalError(ErrnoMessage(path.string(), err));
    }
    struct stat st;
    if (::fstat(fd.get(), &st) != 0) return absl::InternalError(ErrnoMessage(path.string(), errno));
    MappedFile f;
    f.size_ = static_cast<size_t>(st.st_size);
    if (f.size_ > 0) {
      void* p = ::mmap(nullptr, f.size_, PROT_READ, MAP_PRIVATE, fd.get(), 0);
      if (p == MAP_FAILED) {
        return absl::InternalError(ErrnoMessage(absl::StrCat(path.string(), ": mmap"), errno));
      }
      f.data_ = static_cast<const char*>(p);
    }
    return f;
  }
  MappedFile(MappedFile&& o) noexcept : data_(o.data_), size_(o.size_) {
    o.data_ = nullptr;
    o.size_ = 0;
  }
  MappedFile& operator=(MappedFile&&) = delete;
  MappedFile(const MappedFile&) = delete;
  ~MappedFile() {
    if (data_ != nullptr) ::munmap(const_cast<char*>(data_), size_);
  }
  const char* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  MappedFile() = default;
  const char* data_ = nullptr;
  size_t size_ = 0;
};

uint64_t Hash(const void* data, size_t bytes) { return XXH64(data, bytes, 0); }

template <typename T>
std::span<const char> AsBytes(const T* data, size_t n) {
  return {reinterpret_cast<const char*>(data), n * sizeof(T)};
}

// Writes one array file and records it in the metadata.
absl::Status WriteArray(const fs::path& dir, const std::string& name, const std::string& dtype,
                        std::vector<int64_t> shape, std::span<const char> bytes,
                        pb::ModelMetadata* meta) {
  RETURN_IF_ERROR(WriteFileSync(dir / name, bytes));
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
    RETURN_IF_ERROR(WriteAll(fd_.get(), bytes, path_));
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
  Fd fd_;
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

std::string UtcString(std::chrono::system_clock::time_point t) {
  const std::time_t secs = std::chrono::system_clock::to_time_t(t);
  std::tm tm;
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

void ToProto(const DataFingerprint& f, pb::DataFingerprint* out) {
  out->set_path(f.path);
  out->set_rows(f.rows);
  out->set_bytes(f.bytes);
  out->set_content_xxh64(f.content_xxh64);
}

DataFingerprint FromProto(const pb::DataFingerprint& f) {
  return {f.path(), f.rows(), f.bytes(), f.content_xxh64()};
}

// Everything but the version-specific fields and the file list.
pb::ModelMetadata MetadataOf(const FactorModel& m) {
  pb::ModelMetadata meta;
  meta.set_format_version(kModelFormatVersion);
  meta.set_library_version(LibraryVersion());
  const auto now = std::chrono::system_clock::now();
  meta.set_created_unix_ms(
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count());
  meta.set_created_utc(UtcString(now));
  const ModelParams& p = m.params;
  pb::Hyperparameters* hp = meta.mutable_params();
  hp->set_algorithm(std::string(ToString(p.algorithm)));
  hp->set_feedback(std::string(ToString(p.feedback)));
  hp->set_factors(p.factors);
  hp->set_iterations(p.iterations);
  hp->set_regularization(p.regularization);
  hp->set_bias_regularization(p.bias_regularization);
  hp->set_alpha(p.alpha);
  hp->set_cg_steps(p.cg_steps);
  hp->set_cholesky(p.cholesky);
  hp->set_seed(p.seed);
  hp->set_popularity_half_life_days(p.popularity_half_life_days);
  hp->set_burn_in(p.burn_in);
  hp->set_samples(p.samples);
  hp->set_served_samples(p.served_samples);
  hp->set_noise_precision(p.noise_precision);
  hp->set_user_noise_dof(p.user_noise_dof);
  hp->set_item_noise_dof(p.item_noise_dof);
  meta.set_users(m.num_users());
  meta.set_items(m.num_items());
  meta.set_seen_nnz(m.seen.nnz());
  meta.set_has_factors(m.has_factors());
  meta.set_has_biases(m.has_biases());
  meta.set_global_mean(m.global_mean);
  meta.set_min_value(m.min_value);
  meta.set_max_value(m.max_value);
  const ModelLineage& l = m.lineage;
  pb::Lineage* pl = meta.mutable_lineage();
  ToProto(l.data, pl->mutable_data());
  ToProto(l.test, pl->mutable_test());
  pl->set_split(l.split);
  pl->set_train_interactions(l.train_interactions);
  pl->set_test_interactions(l.test_interactions);
  pl->set_events_through_seq(l.events_through_seq);
  pl->set_parent_version(l.parent_version);
  pl->set_gate(l.gate);
  pl->set_events_store_id(l.events_store_id);
  for (const auto& [k, v] : l.metrics) (*pl->mutable_metrics())[k] = v;
  return meta;
}

absl::Status CheckShapes(const FactorModel& m, bool streamed_seen) {
  const int64_t users = m.num_users(), items = m.num_items();
  if (m.has_factors() && (m.user_factors.rows() != users || m.item_factors.rows() != items ||
                          m.user_factors.cols() != m.item_factors.cols())) {
    return absl::InvalidArgumentError("model factor matrices do not match its user/item counts");
  }
  if (m.has_biases() && (m.user_bias.size() != users || m.item_bias.size() != items)) {
    return absl::InvalidArgumentError("model biases do not match its user/item counts");
  }
  if (m.params.algorithm == Algorithm::kBpmf) {
    const ModelParams& p = m.params;
    const int64_t width = 2 + int64_t{p.factors} + int64_t{p.factors} * p.factors;
    if (m.user_factors.cols() != int64_t{p.factors} * p.served_samples ||
        m.user_prior.rows() != p.served_samples || m.user_prior.cols() != width ||
        m.item_prior.rows() != p.served_samples || m.item_prior.cols() != width) {
      return absl::InvalidArgumentError(
          "BPMF model: factor or prior matrices do not match factors x served_samples");
    }
  }
  if (m.item_popularity.size() != 0 && m.item_popularity.size() != items) {
    return absl::InvalidArgumentError("model item popularity does not match its item count");
  }
  if (streamed_seen) {
    if (m.seen.rows() != 0 || m.seen.nnz() != 0) {
      return absl::InvalidArgumentError("model has a seen matrix and a seen source");
    }
  } else if (m.seen.rows() != users || m.seen.cols() != items) {
    // A default CsrMatrix (0 x 0) is accepted for a model without seen items only if it has no
    // users; anything else would not load back.
    if (!(m.seen.rows() == 0 && m.seen.nnz() == 0 && users == 0)) {
      return absl::InvalidArgumentError("model seen matrix does not match its user/item counts");
    }
  }
  return absl::OkStatus();
}

// The 32-byte header followed by the serialized metadata.
absl::StatusOr<std::string> EncodeMetadata(const pb::ModelMetadata& meta) {
  std::string payload;
  try {
    if (!meta.SerializeToString(&payload)) {
      return absl::InternalError("cannot serialize the model metadata");
    }
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("cannot serialize the model metadata: ", e.what()));
  }
  std::string out(kHeaderBytes, '\0');
  const uint32_t version = kModelFormatVersion, reserved = 0;
  const uint64_t length = payload.size(), hash = Hash(payload.data(), payload.size());
  std::memcpy(out.data(), kMagic, 8);
  std::memcpy(out.data() + 8, &version, 4);
  std::memcpy(out.data() + 12, &reserved, 4);
  std::memcpy(out.data() + 16, &length, 8);
  std::memcpy(out.data() + 24, &hash, 8);
  out += payload;
  return out;
}

absl::StatusOr<pb::ModelMetadata> ReadMetadata(const fs::path& dir) {
  const fs::path path = dir / kMetadataFile;
  const std::string name = path.string();
  ASSIGN_OR_RETURN(MappedFile file, MappedFile::Open(path));
  if (file.size() < kHeaderBytes) {
    return absl::DataLossError(
        absl::StrCat(name, ": truncated (", file.size(), " bytes, shorter than the header)"));
  }
  if (std::memcmp(file.data(), kMagic, 8) != 0) {
    return absl::DataLossError(absl::StrCat(name, ": not a recloop model metadata file"));
  }
  uint32_t version, reserved;
  uint64_t length, hash;
  std::memcpy(&version, file.data() + 8, 4);
  std::memcpy(&reserved, file.data() + 12, 4);
  std::memcpy(&length, file.data() + 16, 8);
  std::memcpy(&hash, file.data() + 24, 8);
  // The version is checked before anything else: a newer format may change the rest.
  if (version != kModelFormatVersion) {
    return absl::FailedPreconditionError(absl::StrCat(name, ": format version ", version,
                                                      " is not supported (expected ",
                                                      kModelFormatVersion, ")"));
  }
  if (reserved != 0) {
    return absl::DataLossError(absl::StrCat(name, ": corrupted header (reserved field)"));
  }
  if (file.size() - kHeaderBytes != length) {
    return absl::DataLossError(absl::StrCat(
        name, ": ", file.size() < kHeaderBytes + length ? "truncated" : "trailing bytes",
        " (payload of ", file.size() - kHeaderBytes, " bytes, header says ", length, ")"));
  }
  const char* payload = file.data() + kHeaderBytes;
  if (Hash(payload, length) != hash) {
    return absl::DataLossError(absl::StrCat(name, ": checksum mismatch (corrupted)"));
  }
  pb::ModelMetadata meta;
  try {
    if (!meta.ParseFromArray(payload, static_cast<int>(length))) {
      return absl::DataLossError(absl::StrCat(name, ": cannot parse the metadata"));
    }
  } catch (const std::exception& e) {
    return absl::DataLossError(absl::StrCat(name, ": cannot parse the metadata: ", e.what()));
  }
  if (meta.format_version() != version) {
    return absl::DataLossError(absl::StrCat(name, ": metadata says format version ",
                                            meta.format_version(), ", header says ", version));
  }
  if (meta.users() < 0 || meta.items() < 0 || meta.seen_nnz() < 0 || meta.users() > INT32_MAX ||
      meta.items() > INT32_MAX || meta.params().factors() < 0) {
    return absl::DataLossError(absl::StrCat(name, ": invalid counts"));
  }
  return meta;
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
  ASSIGN_OR_RETURN(MappedFile file, MappedFile::Open(dir / name));
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

// The numbers of the entries of `dir` named v<digits>, ascending.
absl::StatusOr<std::vector<int64_t>> VersionNumbers(const fs::path& dir) {
  std::vector<int64_t> out;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.size() < 1 + kVersionDigits || name[0] != 'v' || name.size() > 12) continue;
    int64_t n = 0;
    bool digits = true;
    for (size_t i = 1; i < name.size() && digits; ++i) {
      digits = name[i] >= '0' && name[i] <= '9';
      n = n * 10 + (name[i] - '0');
    }
    if (digits) out.push_back(n);
  }
  if (ec) return absl::InternalError(absl::StrCat(dir.string(), ": ", ec.message()));
  std::sort(out.begin(), out.end());
  return out;
}

// Highest version number among the entries of `dir` named v<digits>; 0 if none.
absl::StatusOr<int64_t> HighestVersion(const fs::path& dir) {
  ASSIGN_OR_RETURN(const std::vector<int64_t> numbers, VersionNumbers(dir));
  return numbers.empty() ? 0 : numbers.back();
}

std::string VersionName(int64_t n) {
  std::string digits = std::to_string(n);
  if (digits.size() < kVersionDigits) digits.insert(0, kVersionDigits - digits.size(), '0');
  return "v" + digits;
}

std::string RandomSuffix() {
  std::random_device rd;
  return absl::StrCat(::getpid(), "-", rd(), rd());
}

// Writes every file of `m` into `dir` (which exists and is empty) and returns the metadata
// (without the version name: that is chosen at rename time, and model.pb is written last).
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

absl::Status WriteMetadata(const fs::path& dir, const pb::ModelMetadata& meta) {
  ASSIGN_OR_RETURN(std::string bytes, EncodeMetadata(meta));
  return WriteFileSync(dir / kMetadataFile, {bytes.data(), bytes.size()});
}

// Points dir/current at `version` atomically.
absl::Status SwapCurrent(const fs::path& dir, const std::string& version) {
  const fs::path tmp = dir / absl::StrCat(kTmpPrefix, "current-", RandomSuffix());
  if (::symlink(version.c_str(), tmp.c_str()) != 0) {
    return absl::InternalError(ErrnoMessage(absl::StrCat(tmp.string(), ": symlink"), errno));
  }
  const fs::path current = dir / kCurrent;
  if (::rename(tmp.c_str(), current.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return absl::InternalError(ErrnoMessage(absl::StrCat(current.string(), ": rename"), err));
  }
  return FsyncPath(dir);
}

}  // namespace

std::string LibraryVersion() { return RECLOOP_VERSION; }

absl::StatusOr<SavedModel> SaveModel(const FactorModel& model, const std::string& models_dir,
                                     const SaveModelOptions& options) {
  RETURN_IF_ERROR(CheckShapes(model, static_cast<bool>(options.seen_source)));
  const fs::path dir(models_dir);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat(models_dir, ": ", ec.message()));

  const fs::path tmp = dir / absl::StrCat(kTmpPrefix, RandomSuffix());
  if (!fs::create_directory(tmp, ec) || ec) {
    return absl::InternalError(absl::StrCat(tmp.string(), ": cannot create: ", ec.message()));
  }
  // Removes the temporary directory on every error path.
  auto fail = [&tmp](absl::Status s) {
    std::error_code ignored;
    fs::remove_all(tmp, ignored);
    return s;
  };
  auto meta = WriteArrays(model, tmp, options);
  if (!meta.ok()) return fail(meta.status());
  if (options.write_extra_files) {
    if (absl::Status s = options.write_extra_files(tmp.string()); !s.ok()) return fail(s);
  }

  // model.pb records the version name, so it is rewritten if the first name choice is taken by
  // a concurrent writer. Each attempt: write model.pb, fsync the directory, rename.
  for (int attempt = 0; attempt < 100; ++attempt) {
    auto highest = HighestVersion(dir);
    if (!highest.ok()) return fail(highest.status());
    if (*highest >= kMaxVersion) {
      return fail(absl::ResourceExhaustedError(
          absl::StrCat(models_dir, ": version ", kMaxVersion, " reached; start a new directory")));
    }
    const std::string version = VersionName(*highest + 1);
    meta->set_model_version(version);
    if (absl::Status s = WriteMetadata(tmp, *meta); !s.ok()) return fail(s);
    if (absl::Status s = FsyncPath(tmp); !s.ok()) return fail(s);
    const fs::path final_dir = dir / version;
    if (::rename(tmp.c_str(), final_dir.c_str()) != 0) {
      const int err = errno;
      if (err == EEXIST || err == ENOTEMPTY) continue;  // another writer took this version
      return fail(
          absl::InternalError(ErrnoMessage(absl::StrCat(final_dir.string(), ": rename"), err)));
    }
    RETURN_IF_ERROR(FsyncPath(dir));
    if (options.make_current) RETURN_IF_ERROR(SwapCurrent(dir, version));
    return SavedModel{version, final_dir.string()};
  }
  return fail(absl::InternalError(
      absl::StrCat(models_dir, ": could not claim a version name after 100 attempts")));
}

absl::StatusOr<std::vector<std::string>> ListVersions(const std::string& models_dir) {
  std::error_code ec;
  if (!fs::is_directory(models_dir, ec)) return std::vector<std::string>{};
  ASSIGN_OR_RETURN(const std::vector<int64_t> numbers, VersionNumbers(models_dir));
  std::vector<std::string> out;
  for (const int64_t n : numbers) {
    const std::string name = VersionName(n);
    if (fs::exists(fs::path(models_dir) / name / kMetadataFile, ec)) out.push_back(name);
  }
  return out;
}

absl::Status SetCurrentVersion(const std::string& models_dir, const std::string& version) {
  std::error_code ec;
  if (version.find('/') != std::string::npos ||
      !fs::exists(fs::path(models_dir) / version / kMetadataFile, ec)) {
    return absl::NotFoundError(absl::StrCat(models_dir, ": no model version '", version, "'"));
  }
  return SwapCurrent(models_dir, version);
}

absl::StatusOr<std::vector<std::string>> PruneVersions(const std::string& models_dir, int keep) {
  if (keep < 1) return absl::InvalidArgumentError("keep at least one version");
  ASSIGN_OR_RETURN(const std::vector<std::string> versions, ListVersions(models_dir));
  std::string current;
  if (auto dir = ResolveModelDir(models_dir); dir.ok()) {
    current = fs::path(*dir).filename().string();
  }
  std::vector<std::string> removed;
  const int64_t excess = static_cast<int64_t>(versions.size()) - keep;
  for (int64_t i = 0; i < excess; ++i) {
    if (versions[i] == current) continue;
    std::error_code ec;
    fs::remove_all(fs::path(models_dir) / versions[i], ec);
    if (ec) {
      return absl::InternalError(
          absl::StrCat(models_dir, "/", versions[i], ": cannot remove: ", ec.message()));
    }
    removed.push_back(versions[i]);
  }
  return removed;
}

absl::StatusOr<std::string> ResolveModelDir(const std::string& path) {
  const fs::path p(path);
  std::error_code ec;
  if (fs::exists(p / kMetadataFile, ec)) return p.string();
  const fs::path current = p / kCurrent;
  if (fs::is_symlink(current, ec)) {
    const fs::path target = fs::read_symlink(current, ec);
    if (ec) return absl::InternalError(absl::StrCat(current.string(), ": ", ec.message()));
    const fs::path dir = target.is_absolute() ? target : p / target;
    if (!fs::exists(dir / kMetadataFile, ec)) {
      return absl::NotFoundError(absl::StrCat(current.string(), " points at ", dir.string(),
                                              ", which holds no ", kMetadataFile));
    }
    return dir.string();
  }
  if (fs::exists(p / "model.json", ec)) {
    return absl::FailedPreconditionError(
        absl::StrCat(path,
                     ": a format version 1 model (model.json), which is no longer "
                     "supported (expected ",
                     kModelFormatVersion, "); retrain it"));
  }
  return absl::NotFoundError(absl::StrCat(path, ": no model here (neither ", kMetadataFile,
                                          " nor a '", kCurrent, "' link)"));
}

absl::StatusOr<FactorModel> LoadModel(const std::string& path) {
  ASSIGN_OR_RETURN(const std::string dir_name, ResolveModelDir(path));
  const fs::path dir(dir_name);
  ASSIGN_OR_RETURN(const pb::ModelMetadata meta, ReadMetadata(dir));
  const std::string meta_path = (dir / kMetadataFile).string();
  FactorModel m;
  auto& p = m.params;
  const pb::Hyperparameters& hp = meta.params();
  auto algorithm = ParseAlgorithm(hp.algorithm());
  auto feedback = ParseFeedback(hp.feedback());
  if (!algorithm.ok() || !feedback.ok()) {
    const absl::Status bad = algorithm.ok() ? feedback.status() : algorithm.status();
    return absl::DataLossError(absl::StrCat(meta_path, ": ", bad.message()));
  }
  p.algorithm = *algorithm;
  p.feedback = *feedback;
  p.factors = hp.factors();
  p.iterations = hp.iterations();
  p.regularization = hp.regularization();
  p.bias_regularization = hp.bias_regularization();
  p.alpha = hp.alpha();
  p.cg_steps = hp.cg_steps();
  p.cholesky = hp.cholesky();
  p.seed = hp.seed();
  p.popularity_half_life_days = hp.popularity_half_life_days();
  p.burn_in = hp.burn_in();
  p.samples = hp.samples();
  p.served_samples = hp.served_samples();
  p.noise_precision = hp.noise_precision();
  p.user_noise_dof = hp.user_noise_dof();
  p.item_noise_dof = hp.item_noise_dof();
  m.global_mean = meta.global_mean();
  m.min_value = meta.min_value();
  m.max_value = meta.max_value();

  ModelLineage& l = m.lineage;
  l.version = meta.model_version();
  l.library_version = meta.library_version();
  l.created_unix_ms = meta.created_unix_ms();
  l.created_utc = meta.created_utc();
  l.data = FromProto(meta.lineage().data());
  l.test = FromProto(meta.lineage().test());
  l.split = meta.lineage().split();
  l.train_interactions = meta.lineage().train_interactions();
  l.test_interactions = meta.lineage().test_interactions();
  l.events_through_seq = meta.lineage().events_through_seq();
  l.parent_version = meta.lineage().parent_version();
  l.gate = meta.lineage().gate();
  l.events_store_id = meta.lineage().events_store_id();
  for (const auto& [k, v] : meta.lineage().metrics()) l.metrics[k] = v;

  const int64_t users = meta.users(), items = meta.items(), nnz = meta.seen_nnz();
  ASSIGN_OR_RETURN(m.users, ReadIdsFile(dir, meta, "users.txt", users));
  ASSIGN_OR_RETURN(m.items, ReadIdsFile(dir, meta, "items.txt", items));
  if (meta.has_factors()) {
    const pb::ArrayFile* uf = FindFile(meta, "user_factors.f32");
    const int64_t k = uf != nullptr && uf->shape_size() == 2 ? uf->shape(1) : p.factors;
    const int64_t expected =
        p.algorithm == Algorithm::kBpmf ? int64_t{p.factors} * p.served_samples : p.factors;
    if (k <= 0 || (p.algorithm != Algorithm::kPopular && k != expected)) {
      return absl::DataLossError(absl::StrCat(meta_path, ": factor matrices have ", k,
                                              " columns, hyper-parameters say ", expected));
    }
    ASSIGN_OR_RETURN(m.user_factors, ReadMatrixFile(dir, meta, "user_factors.f32", users, k));
    ASSIGN_OR_RETURN(m.item_factors, ReadMatrixFile(dir, meta, "item_factors.f32", items, k));
    if (p.algorithm == Algorithm::kBpmf) {
      const int64_t width = 2 + int64_t{p.factors} + int64_t{p.factors} * p.factors;
      ASSIGN_OR_RETURN(m.user_prior, ReadMatrixFile(dir, meta, "bpmf_user_prior.f32",
                                                    p.served_samples, width));
      ASSIGN_OR_RETURN(m.item_prior, ReadMatrixFile(dir, meta, "bpmf_item_prior.f32",
                                                    p.served_samples, width));
    }
  }
  if (meta.has_biases()) {
    ASSIGN_OR_RETURN(m.user_bias, ReadFloatVector(dir, meta, "user_bias.f32", users));
    ASSIGN_OR_RETURN(m.item_bias, ReadFloatVector(dir, meta, "item_bias.f32", items));
  }
  // A model may carry no popularity (empty vector); otherwise it has one entry per item.
  const pb::ArrayFile* pop = FindFile(meta, "item_popularity.f32");
  const int64_t pop_n = pop != nullptr && pop->shape_size() == 1 && pop->shape(0) == 0 ? 0 : items;
  ASSIGN_OR_RETURN(m.item_popularity, ReadFloatVector(dir, meta, "item_popularity.f32", pop_n));

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
  m.seen = CsrMatrix::FromArrays(static_cast<int32_t>(users), static_cast<int32_t>(items),
                                 std::move(indptr), std::move(indices), std::move(values));
  return m;
}

absl::StatusOr<std::string> DescribeModel(const std::string& path, bool json) {
  ASSIGN_OR_RETURN(const std::string dir, ResolveModelDir(path));
  ASSIGN_OR_RETURN(const pb::ModelMetadata meta, ReadMetadata(dir));
  std::string out;
  try {
    if (json) {
      google::protobuf::util::JsonPrintOptions o;
      o.add_whitespace = true;
      o.always_print_primitive_fields = true;
      o.preserve_proto_field_names = true;
      const auto status = google::protobuf::util::MessageToJsonString(meta, &out, o);
      if (!status.ok()) {
        return absl::InternalError(
            absl::StrCat(dir, "/", kMetadataFile, ": cannot print as JSON: ", status.ToString()));
      }
    } else if (!google::protobuf::TextFormat::PrintToString(meta, &out)) {
      return absl::InternalError(absl::StrCat(dir, "/", kMetadataFile, ": cannot print"));
    }
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat(dir, "/", kMetadataFile, ": ", e.what()));
  }
  // Text mode says which version `current` resolved to; JSON must stay one parseable object.
  return json ? out + "\n" : absl::StrCat("# ", dir, "\n", out);
}

absl::StatusOr<DataFingerprint> FingerprintFile(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    const int err = errno;
    if (err == ENOENT) return absl::NotFoundError(absl::StrCat(path, ": missing"));
    return absl::InternalError(ErrnoMessage(path, err));
  }
  XXH64_state_t* state = XXH64_createState();
  if (state == nullptr) return absl::ResourceExhaustedError("XXH64_createState failed");
  XXH64_reset(state, 0);
  std::vector<char> buf(1 << 20);
  DataFingerprint f;
  absl::Status status;
  while (true) {
    const ssize_t n = ::read(fd.get(), buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      status = absl::InternalError(ErrnoMessage(absl::StrCat(path, ": read"), errno));
      break;
    }
    if (n == 0) break;
    XXH64_update(state, buf.data(), static_cast<size_t>(n));
    f.bytes += n;
  }
  f.content_xxh64 = XXH64_digest(state);
  XXH64_freeState(state);
  if (!status.ok()) return status;
  return f;
}

}  // namespace recloop
