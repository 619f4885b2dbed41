#include "summarizer/curl_global.hpp"

#include <curl/curl.h>

#include <mutex>
#include <stdexcept>
#include <string>

namespace cg::summarizer::detail {

void ensure_curl_global_init() {
  static std::once_flag once;
  static CURLcode result = CURLE_OK;
  std::call_once(once, [] { result = curl_global_init(CURL_GLOBAL_DEFAULT); });
  if (result != CURLE_OK) {
    throw std::runtime_error(std::string("curl_global_init failed: ") + curl_easy_strerror(result));
  }
}

} // namespace cg::summarizer::detail
