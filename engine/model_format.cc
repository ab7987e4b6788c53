// The metadata file model.pb: header, checksum and Protobuf payload (format in model_io.h).
#include "engine/model_format.h"

#include <bit>
#include <chrono>
#include <cstring>
#include <ctime>
#include <exception>

#include "absl/strings/str_cat.h"
#include "base/mapped_file.h"
#include "base/posix_file.h"
#include "engine/model_io.h"
#include "engine/status_macros.h"

namespace recloop::model_internal {
namespace {

static_assert(std::endian::native == std::endian::little, "model files are little-endian");

constexpr char kMagic[8] = {'R', 'C', 'L', 'M', 'O', 'D', 'E', 'L'};

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

}  // namespace

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
  hp->set_confidence(std::string(ToString(p.confidence)));
  hp->set_rating_neutral(p.rating_neutral);
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


absl::Status ModelFromMetadata(const pb::ModelMetadata& meta, const std::string& meta_path,
                               FactorModel* m) {
  auto& p = m->params;
  const pb::Hyperparameters& hp = meta.params();
  auto algorithm = ParseAlgorithm(hp.algorithm());
  auto feedback = ParseFeedbackKind(hp.feedback());
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
  if (!hp.confidence().empty()) {  // older models: linear
    auto confidence = ParseConfidence(hp.confidence());
    if (!confidence.ok()) {
      return absl::DataLossError(absl::StrCat(meta_path, ": ", confidence.status().message()));
    }
    p.confidence = *confidence;
  }
  p.rating_neutral = hp.rating_neutral();
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
  m->global_mean = meta.global_mean();
  m->min_value = meta.min_value();
  m->max_value = meta.max_value();

  ModelLineage& l = m->lineage;
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
  return absl::OkStatus();
}

absl::StatusOr<pb::ModelMetadata> ReadMetadata(const fs::path& dir) {
  const fs::path path = dir / kMetadataFile;
  const std::string name = path.string();
  ASSIGN_OR_RETURN(MappedFile file, MappedFile::Open(name));
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

absl::Status WriteMetadata(const fs::path& dir, const pb::ModelMetadata& meta) {
  ASSIGN_OR_RETURN(std::string bytes, EncodeMetadata(meta));
  return WriteFileSynced((dir / kMetadataFile).string(), {bytes.data(), bytes.size()});
}

}  // namespace recloop::model_internal
