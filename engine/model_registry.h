// ModelRegistry: algorithm names ("als", "bpmf", "popular", ...) mapped to the factories that
// make their models (engine/model.h), and loading a saved model back into its implementation.
// The registry knows nothing of what a factory is given: `Config...` is the caller's (training
// passes its TrainOptions and TrainHooks, training/trainers.h), so the engine stays below the
// layers that define options. A registry is an ordinary object, filled by an explicit call
// (e.g. RegisterTrainers); there is no global registry with a destructor.
#ifndef RECLOOP_ENGINE_MODEL_REGISTRY_H_
#define RECLOOP_ENGINE_MODEL_REGISTRY_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/model.h"
#include "engine/model_io.h"

namespace recloop {

// Returns NotFound naming `name` and the registered names (for ModelRegistry::Create).
absl::Status UnknownModelError(std::string_view name, const std::vector<std::string>& known);

// LoadModel(path), then `model->Restore` of the loaded data, with the model made by `make` for
// the algorithm the data names (ToString(params.algorithm)). Errors: LoadModel's, make's and
// Restore's.
absl::StatusOr<std::unique_ptr<Model>> LoadModelAs(
    const std::string& path,
    const std::function<absl::StatusOr<std::unique_ptr<Model>>(std::string_view)>& make);

// Not thread-safe to fill; concurrent const calls are safe once filled.
template <typename... Config>
class ModelRegistry {
 public:
  // Makes an unfitted model from the caller's configuration. Returns InvalidArgument naming the
  // option for a configuration it refuses.
  using Factory = std::function<absl::StatusOr<std::unique_ptr<Model>>(const Config&...)>;

  // Returns AlreadyExists if `name` is taken, InvalidArgument for an empty name or factory.
  absl::Status Register(std::string name, Factory factory) {
    if (name.empty() || !factory) {
      return absl::InvalidArgumentError("a model needs a name and a factory");
    }
    if (!factories_.emplace(name, std::move(factory)).second) {
      return absl::AlreadyExistsError("model '" + name + "' is already registered");
    }
    return absl::OkStatus();
  }

  bool Contains(std::string_view name) const { return factories_.find(name) != factories_.end(); }

  // Registered names, sorted.
  std::vector<std::string> Names() const {
    std::vector<std::string> names;
    for (const auto& [name, f] : factories_) names.push_back(name);
    return names;
  }

  // A new model of algorithm `name`. Returns NotFound for an unknown name, else the factory's
  // result.
  absl::StatusOr<std::unique_ptr<Model>> Create(std::string_view name,
                                                const Config&... config) const {
    const auto it = factories_.find(name);
    if (it == factories_.end()) return UnknownModelError(name, Names());
    return it->second(config...);
  }

  // The model saved at `path` (engine/model_io.h's LoadModel), restored into a model made with
  // `config` (whose training settings play no part: the loaded data carries its parameters).
  // Errors: LoadModel's, NotFound for an algorithm not registered, Restore's.
  absl::StatusOr<std::unique_ptr<Model>> Load(const std::string& path,
                                              const Config&... config) const {
    return LoadModelAs(path, [&](std::string_view name) { return Create(name, config...); });
  }

 private:
  std::map<std::string, Factory, std::less<>> factories_;
};

}  // namespace recloop

#endif  // RECLOOP_ENGINE_MODEL_REGISTRY_H_
