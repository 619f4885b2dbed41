// The 'summary' module (issue 6): the XEP-0050 command 'Summarize a conversation' on the server's domain, for local
// users. Stage 1 offers a form (which conversation, how far back, the style, the language); the next stage reads
// the caller's own archive with that correspondent (the MAM store, through storage), builds a transcript without
// end-to-end encrypted messages (summarizer/transcript.hpp), asks the configured OpenAI-compatible endpoint
// (summarizer/llm_client.hpp) and answers with a result form: a label naming what was summarised and by which model,
// and the summary, one <value/> per line.
//
// Off by default (it sends conversations to a third party): enable it in modules.enabled and set
// modules.summary.base_url and model. Enabled without a base_url, the command answers that it is not configured.
// Where the data goes (the endpoint's host and the model) is stated in the command's form and in its notes.
#pragma once

#include "server/api/module.hpp"

#include <memory>
#include <string>
#include <string_view>

namespace cg::summarizer {

inline constexpr std::string_view summarize_node = "http://chatgroup.im/commands#summarize";
// The archive store of XEP-0313 (xep/xep0313_mam.hpp: mam::store_name), read through storage.
inline constexpr std::string_view archive_store = "mam";

std::unique_ptr<api::Module> make_module();

// "host[:port]" of an http(s) URL, "" when it is not one.
std::string url_host(std::string_view url);

} // namespace cg::summarizer
