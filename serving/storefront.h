// The demo storefront: a static page (serving/web/: plain HTML, JS and CSS, compiled into the
// binary so that the server needs no files beside its model) that picks a customer, shows their
// recommendations with titles and categories, posts view/buy/dislike/rating feedback and shows
// the list change, with the model version and live counters from /metrics.
#ifndef RECLOOP_SERVING_STOREFRONT_H_
#define RECLOOP_SERVING_STOREFRONT_H_

#include <optional>
#include <string_view>

namespace recloop {

struct StaticFile {
  std::string_view content_type;
  std::string_view body;
};

// The file served at `path` ("/", "/storefront.js", "/storefront.css"); nullopt for any other.
std::optional<StaticFile> StorefrontFile(std::string_view path);

}  // namespace recloop

#endif  // RECLOOP_SERVING_STOREFRONT_H_
