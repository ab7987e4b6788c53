#include "engine/model_registry.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/status_macros.h"

namespace recloop {

absl::Status UnknownModelError(std::string_view name, const std::vector<std::string>& known) {
  return absl::NotFoundError(absl::StrCat("unknown model '", std::string(name), "' (registered: ",
                                          absl::StrJoin(known, ", "), ")"));
}

absl::StatusOr<std::unique_ptr<Model>> LoadModelAs(
    const std::string& path,
    const std::function<absl::StatusOr<std::unique_ptr<Model>>(std::string_view)>& make) {
  ASSIGN_OR_RETURN(FactorModel data, LoadModel(path));
  ASSIGN_OR_RETURN(std::unique_ptr<Model> model, make(ToString(data.params.algorithm)));
  RETURN_IF_ERROR(model->Restore(std::move(data)));
  return model;
}

}  // namespace recloop
