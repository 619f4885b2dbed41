// core_sections(): the core's option declarations, in the documented order.
#include "tests/unit/config/helpers.hpp"

#include <algorithm>

using namespace cg;
using namespace cg::config;

namespace {

const api::OptionSpec& spec_of(const std::vector<api::OptionSection>& sections, std::string_view section,
                               std::string_view key) {
  auto s = std::find_if(sections.begin(), sections.end(), [&](const auto& x) { return x.name == section; });
  REQUIRE(s != sections.end());
  auto o = std::find_if(s->options.begin(), s->options.end(), [&](const auto& x) { return x.key == key; });
  REQUIRE(o != s->options.end());
  return *o;
}

std::vector<std::string> keys_of(const api::OptionSection& section) {
  std::vector<std::string> keys;
  for (const auto& o : section.options)
    keys.push_back(o.key);
  return keys;
}

} // namespace

TEST_CASE("core_sections: sections and keys in order", "[config][core]") {
  auto sections = core_sections({"ping"});
  REQUIRE(sections.size() == 8);
  std::vector<std::string> names;
  for (const auto& s : sections)
    names.push_back(s.name);
  CHECK(names == std::vector<std::string>{"server", "log", "tls", "c2s", "s2s", "auth", "storage", "modules"});
  CHECK(keys_of(sections[0]) == std::vector<std::string>{"hosts", "data_dir", "threads", "shutdown_timeout"});
  CHECK(keys_of(sections[1]) == std::vector<std::string>{"level", "file"});
  CHECK(keys_of(sections[2]) == std::vector<std::string>{"certificate", "key", "min_version"});
  CHECK(keys_of(sections[3]) == std::vector<std::string>{"addresses", "port", "direct_tls_port", "require_encryption",
                                                         "max_stanza_size", "max_depth", "max_preauth_bytes",
                                                         "auth_timeout", "idle_timeout", "max_send_queue",
                                                         "max_connections_per_ip", "rate_limit", "resource_conflict",
                                                         "max_resources", "resume_timeout", "max_unacked"});
  CHECK(keys_of(sections[4]) == std::vector<std::string>{"enabled",
                                                         "addresses",
                                                         "port",
                                                         "direct_tls_port",
                                                         "require_encryption",
                                                         "allow_dialback",
                                                         "dialback_without_tls",
                                                         "ca_file",
                                                         "system_trust",
                                                         "nameserver",
                                                         "use_hosts_file",
                                                         "routes",
                                                         "allow",
                                                         "deny",
                                                         "max_stanza_size",
                                                         "connect_timeout",
                                                         "auth_timeout",
                                                         "idle_timeout",
                                                         "max_queue",
                                                         "max_send_queue",
                                                         "max_connections_per_ip",
                                                         "max_streams_per_domain",
                                                         "max_backoff"});
  CHECK(keys_of(sections[5]) == std::vector<std::string>{"mechanisms", "allow_insecure_plain", "scram_iterations",
                                                         "max_attempts", "failure_delay", "failure_delay_max",
                                                         "ban_after", "ban_window", "ban_time"});
  CHECK(keys_of(sections[6]) == std::vector<std::string>{"driver", "database", "synchronous"});
  CHECK(keys_of(sections[7]) == std::vector<std::string>{"enabled"});
  CHECK(sections[0].doc == "The server: its domains and where it keeps its data.");
  CHECK(sections[2].doc == "TLS for client and server-to-server connections (one certificate for every served domain). "
                           "TLS 1.2 is the minimum.");
  for (const auto& s : sections) {
    CHECK_FALSE(s.doc.empty());
    for (const auto& o : s.options)
      CHECK_FALSE(o.doc.empty());
  }
}

TEST_CASE("core_sections: types, defaults, bounds and choices", "[config][core]") {
  auto sections = core_sections({"ping", "disco"});
  auto int_spec = [&](std::string_view section, std::string_view key, std::int64_t def, double min, double max) {
    INFO(section << "." << key);
    const auto& o = spec_of(sections, section, key);
    CHECK(o.type == api::OptionType::Int);
    CHECK(std::get<std::int64_t>(o.default_value) == def);
    CHECK(o.min == min);
    CHECK(o.max == max);
  };
  int_spec("server", "threads", 0, 0, 256);
  int_spec("server", "shutdown_timeout", 5, 1, 300);
  int_spec("c2s", "port", 5222, 0, 65535);
  int_spec("c2s", "direct_tls_port", 5223, 0, 65535);
  int_spec("c2s", "max_stanza_size", 262144, 1024, 16777216);
  int_spec("c2s", "max_depth", 64, 8, 1024);
  int_spec("c2s", "max_preauth_bytes", 65536, 4096, 1048576);
  int_spec("c2s", "auth_timeout", 60, 5, 3600);
  int_spec("c2s", "idle_timeout", 600, 30, 86400);
  int_spec("c2s", "max_send_queue", 2097152, 65536, 268435456);
  int_spec("c2s", "max_connections_per_ip", 256, 0, 1000000);
  int_spec("c2s", "rate_limit", 0, 0, 1073741824);
  int_spec("c2s", "max_resources", 10, 1, 1000);
  int_spec("c2s", "resume_timeout", 300, 0, 86400);
  int_spec("c2s", "max_unacked", 1000, 10, 1000000);
  int_spec("auth", "scram_iterations", 4096, 4096, 10000000);
  int_spec("auth", "max_attempts", 3, 2, 5);
  int_spec("auth", "failure_delay", 1, 0, 60);
  int_spec("auth", "failure_delay_max", 16, 0, 600);
  int_spec("auth", "ban_after", 10, 0, 1000);
  int_spec("auth", "ban_window", 600, 1, 86400);
  int_spec("auth", "ban_time", 600, 1, 86400);

  auto string_spec = [&](std::string_view section, std::string_view key, const std::string& def,
                         const std::vector<std::string>& choices) {
    INFO(section << "." << key);
    const auto& o = spec_of(sections, section, key);
    CHECK(o.type == api::OptionType::String);
    CHECK(std::get<std::string>(o.default_value) == def);
    CHECK(o.choices == choices);
  };
  string_spec("server", "data_dir", "data", {});
  string_spec("log", "level", "info", {"trace", "debug", "info", "warn", "error", "off"});
  string_spec("log", "file", "", {});
  string_spec("tls", "certificate", "", {});
  string_spec("tls", "key", "", {});
  string_spec("tls", "min_version", "1.2", {"1.2", "1.3"});
  string_spec("c2s", "resource_conflict", "kick_old", {"kick_old", "refuse"});
  string_spec("storage", "driver", "sqlite", {"sqlite", "memory"});
  string_spec("storage", "database", "chatgroup.sqlite", {});
  string_spec("storage", "synchronous", "full", {"full", "normal"});

  CHECK(spec_of(sections, "c2s", "require_encryption").type == api::OptionType::Bool);
  CHECK(std::get<bool>(spec_of(sections, "c2s", "require_encryption").default_value) == true);
  CHECK(std::get<bool>(spec_of(sections, "auth", "allow_insecure_plain").default_value) == false);

  const std::vector<std::string> mechanisms = {"SCRAM-SHA-512-PLUS",
                                               "SCRAM-SHA-256-PLUS",
                                               "SCRAM-SHA-1-PLUS",
                                               "SCRAM-SHA-512",
                                               "SCRAM-SHA-256",
                                               "SCRAM-SHA-1",
                                               "PLAIN"};
  const auto& mech = spec_of(sections, "auth", "mechanisms");
  CHECK(mech.type == api::OptionType::StringList);
  CHECK(std::get<std::vector<std::string>>(mech.default_value) == mechanisms);
  CHECK(mech.choices == mechanisms);
  CHECK(std::get<std::vector<std::string>>(spec_of(sections, "server", "hosts").default_value) ==
        std::vector<std::string>{"localhost"});
  CHECK(std::get<std::vector<std::string>>(spec_of(sections, "c2s", "addresses").default_value) ==
        std::vector<std::string>{"127.0.0.1"});
  CHECK(std::get<std::vector<std::string>>(spec_of(sections, "modules", "enabled").default_value) ==
        std::vector<std::string>{"ping", "disco"});
  CHECK(spec_of(sections, "modules", "enabled").choices.empty());
}

TEST_CASE("core_sections: every default is valid for the schema", "[config][core]") {
  Schema schema;
  for (auto& s : core_sections({"a", "b"}))
    CHECK_NOTHROW(schema.add(std::move(s)));
  CHECK(schema.sections().size() == 8);
}
