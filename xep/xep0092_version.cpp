// XEP-0092: Software Version, version 1.1 (2007-02-15). The server's name and version; the operating system only
// when the administrator opts in (XEP-0092 §4 notes that revealing it may help attackers).
#include "xep/xep0092_version.hpp"

#include <sys/utsname.h>

namespace cg::xep::version {

using api::Element;
using api::IqReply;

std::optional<Version> Version::parse(const Element& query) {
  if (!query.is("query", ns)) {
    return std::nullopt;
  }
  Version v;
  v.name = query.child_text("name");
  v.version = query.child_text("version");
  v.os = query.child_text("os");
  // XEP-0092 §2: a result contains <name/> and <version/>.
  if (v.name.empty() || v.version.empty()) {
    return std::nullopt;
  }
  return v;
}

Element Version::to_element() const {
  Element q("query", std::string(ns));
  q.add_text_child("name", name);
  q.add_text_child("version", version);
  if (!os.empty()) {
    q.add_text_child("os", os);
  }
  return q;
}

namespace {

class VersionModule final : public api::Module {
public:
  api::ModuleInfo info() const override {
    return {"version",
            "Software version: tells clients which server software (and version) runs here",
            {{"XEP-0092", "1.1", "complete", ""}},
            {},
            {api::opt_bool("show_os", false, "Also tell the operating system (kernel name and release)")},
            true};
  }

  void load(api::ModuleContext& ctx) override {
    ctx.add_feature(std::string(ns));
    Version v{ctx.server_info().name, ctx.server_info().version, {}};
    if (ctx.option<bool>("show_os")) {
      utsname u{};
      if (uname(&u) == 0) {
        v.os = std::string(u.sysname) + " " + u.release;
      }
    }
    ctx.on_iq(
        api::IqScope::Host, api::IqType::Get, std::string(ns), "query",
        [v](const api::IqRequest&) -> boost::asio::awaitable<IqReply> { co_return IqReply::result(v.to_element()); });
  }
};

} // namespace

std::unique_ptr<api::Module> make_module() {
  return std::make_unique<VersionModule>();
}

} // namespace cg::xep::version
