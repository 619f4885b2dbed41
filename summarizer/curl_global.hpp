// libcurl's process-wide initialisation, in one place: curl_global_init runs once, before the first handle, from
// whichever thread gets there first (std::call_once). It is never undone: curl_global_cleanup at exit would race
// with any thread still using libcurl, and the process ends anyway.
#pragma once

namespace cg::summarizer::detail {

// Throws std::runtime_error if libcurl cannot initialise (then every later call throws too).
void ensure_curl_global_init();

} // namespace cg::summarizer::detail
