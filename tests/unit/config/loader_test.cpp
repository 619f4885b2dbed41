// load_string / load_file: values, and every kind of error with its file, line, column and key.
#include "tests/unit/config/helpers.hpp"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <unistd.h>

using namespace cg;
using namespace cg::config;
using test::check_error;
using test::check_single_error;
using test::expect_config;
using test::expect_errors;

namespace {

LoadResult load(const std::string& text) {
  return load_string(text, "test.toml", test::schema_with_ping());
}

} // namespace

TEST_CASE("An empty file gives the defaults", "[config][load]") {
  Config c = expect_config(load(""));
  CHECK(c.source() == "test.toml");
  CHECK(c.get_int("c2s", "port") == 5222);
  CHECK(c.get_list("modules", "enabled") == test::default_modules());
  CHECK_FALSE(c.is_set("c2s", "port"));
  // Sections present but empty set nothing either.
  Config c2 = expect_config(load("[c2s]\n[modules.ping]\n"));
  CHECK_FALSE(c2.is_set("c2s", "port"));
  CHECK(c2.get_int("modules.ping", "interval") == 300);
}

TEST_CASE("A full valid file sets every kind of value", "[config][load]") {
  const std::string text = "# a comment\n"
                           "[server]\n"
                           "hosts = [\"example.org\", \"chat.example.org\"]\n"
                           "data_dir = \"/var/lib/chatgroup\"\n"
                           "threads = 4\n"
                           "\n"
                           "[log]\n"
                           "level = \"debug\"\n"
                           "file = 'C:\\logs\\cg.log'\n"
                           "[tls]\n"
                           "min_version = \"1.3\"\n"
                           "[c2s]\n"
                           "addresses = [\"0.0.0.0\", \"::\"]\n"
                           "port = 0\n"
                           "direct_tls_port = 65535\n"
                           "require_encryption = false\n"
                           "resource_conflict = \"refuse\"\n"
                           "[auth]\n"
                           "mechanisms = [\"SCRAM-SHA-256\", \"PLAIN\"]\n"
                           "scram_iterations = 10000000\n"
                           "[storage]\n"
                           "driver = \"memory\"\n"
                           "synchronous = \"normal\"\n"
                           "[modules]\n"
                           "enabled = [\"ping\"]\n"
                           "[modules.ping]\n"
                           "interval = 10\n"
                           "ratio = 1.0\n";
  Config c = expect_config(load(text));
  CHECK(c.source() == "test.toml");
  CHECK(c.get_list("server", "hosts") == std::vector<std::string>{"example.org", "chat.example.org"});
  CHECK(c.get_string("server", "data_dir") == "/var/lib/chatgroup");
  CHECK(c.get_int("server", "threads") == 4);
  CHECK(c.get_string("log", "level") == "debug");
  CHECK(c.get_string("log", "file") == "C:\\logs\\cg.log");
  CHECK(c.get_string("tls", "min_version") == "1.3");
  CHECK(c.get_list("c2s", "addresses") == std::vector<std::string>{"0.0.0.0", "::"});
  CHECK(c.get_int("c2s", "port") == 0);
  CHECK(c.get_int("c2s", "direct_tls_port") == 65535);
  CHECK(c.get_bool("c2s", "require_encryption") == false);
  CHECK(c.get_string("c2s", "resource_conflict") == "refuse");
  CHECK(c.get_list("auth", "mechanisms") == std::vector<std::string>{"SCRAM-SHA-256", "PLAIN"});
  CHECK(c.get_int("auth", "scram_iterations") == 10000000);
  CHECK(c.get_string("storage", "driver") == "memory");
  CHECK(c.get_string("storage", "synchronous") == "normal");
  CHECK(c.get_list("modules", "enabled") == std::vector<std::string>{"ping"});
  CHECK(c.get_int("modules.ping", "interval") == 10);
  CHECK(c.get_float("modules.ping", "ratio") == 1.0);

  for (auto [section, key] : {std::pair{"server", "hosts"},
                              {"server", "threads"},
                              {"log", "file"},
                              {"c2s", "require_encryption"},
                              {"auth", "mechanisms"},
                              {"modules", "enabled"},
                              {"modules.ping", "interval"},
                              {"modules.ping", "ratio"}}) {
    INFO(section << "." << key);
    CHECK(c.is_set(section, key));
  }
  // Not in the file: defaults, not set.
  CHECK(c.get_int("c2s", "max_depth") == 64);
  CHECK_FALSE(c.is_set("c2s", "max_depth"));
  CHECK_FALSE(c.is_set("server", "shutdown_timeout"));
  CHECK(c.get_string("storage", "database") == "chatgroup.sqlite");
  CHECK_FALSE(c.is_set("storage", "database"));
  CHECK(c.section("c2s").at("port") == api::OptionValue{std::int64_t{0}});
}

TEST_CASE("Inline tables and dotted keys reach the same options", "[config][load]") {
  Config c = expect_config(load("c2s = { port = 5 }\n"
                                "[modules]\n"
                                "ping = { interval = 20 }\n"));
  CHECK(c.get_int("c2s", "port") == 5);
  CHECK(c.get_int("modules.ping", "interval") == 20);
  Config d = expect_config(load("modules.ping.interval = 30\nc2s.max_depth = 9\n"));
  CHECK(d.get_int("modules.ping", "interval") == 30);
  CHECK(d.get_int("c2s", "max_depth") == 9);
  CHECK(d.is_set("c2s", "max_depth"));
}

TEST_CASE("An integer is accepted where a float is expected", "[config][load]") {
  Config c = expect_config(load("[modules.ping]\nratio = 1\n"));
  CHECK(c.get_float("modules.ping", "ratio") == 1.0);
  CHECK(c.is_set("modules.ping", "ratio"));
  Config z = expect_config(load("[modules.ping]\nratio = 0\n"));
  CHECK(z.get_float("modules.ping", "ratio") == 0.0);
  // ... but its bounds still apply, and the message shows what was written.
  check_single_error(load("[modules.ping]\nratio = 2\n"), 2, 9, "modules.ping.ratio",
                     "must be between 0.0 and 1.0, found 2");
  // A float where an integer is expected is not accepted.
  check_single_error(load("[modules.ping]\ninterval = 20.0\n"), 2, 12, "modules.ping.interval",
                     "expected integer, found float");
}

TEST_CASE("A TOML syntax error is reported with toml++'s position and no key", "[config][errors]") {
  auto errors = expect_errors(load("[c2s]\n"
                                   "port = 5222\n"
                                   "max_depth = \n"
                                   "[foo]\n")); // never reached: toml++ stops at the syntax error
  INFO(test::describe(errors));
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].file == "test.toml");
  CHECK(errors[0].line == 3);
  CHECK(errors[0].column == 13);
  CHECK(errors[0].key.empty());
  CHECK(errors[0].message.find("expected value") != std::string::npos);

  auto redefined = expect_errors(load("[c2s]\nport = 1\n\n[c2s]\n"));
  REQUIRE(redefined.size() == 1);
  CHECK(redefined[0].line == 4);
  CHECK(redefined[0].key.empty());
}

TEST_CASE("Unknown sections", "[config][errors]") {
  check_single_error(load("[server]\n"
                          "threads = 2\n"
                          "\n"
                          "[foo]\n"
                          "bar = 1\n"),
                     4, 1, "", "unknown section 'foo'");
  check_single_error(load("[c2s]\nport = 1\n[c2ss]\nport = 2\n"), 3, 1, "",
                     "unknown section 'c2ss'; did you mean 'c2s'?");
  // Case-sensitive.
  check_single_error(load("\n[C2S]\nport = 1\n"), 2, 1, "", "unknown section 'C2S'; did you mean 'c2s'?");
  // An array of tables is a section too.
  check_single_error(load("[[bar]]\nx = 1\n"), 1, 1, "", "unknown section 'bar'");
  // A known section written as a plain value.
  check_single_error(load("c2s = 5\n"), 1, 7, "c2s", "expected a table ([c2s]), found integer");
}

TEST_CASE("Module sections: declared ones load, undeclared ones are unknown sections", "[config][errors]") {
  const std::string text = "[modules]\n"
                           "enabled = [\"ping\"]\n"
                           "\n"
                           "[modules.ping]\n"
                           "interval = 60\n";
  Config c = expect_config(load(text));
  CHECK(c.get_int("modules.ping", "interval") == 60);

  // The same file against the core's sections only: no module declared "modules.ping".
  Schema core;
  for (auto& section : core_sections({}))
    core.add(std::move(section));
  auto errors = expect_errors(load_string(text, "test.toml", core));
  REQUIRE(errors.size() == 1);
  check_error(errors[0], "test.toml", 4, 1, "", "unknown section 'modules.ping'");

  check_single_error(load("[modules.pong]\ninterval = 60\n"), 1, 1, "",
                     "unknown section 'modules.pong'; did you mean 'modules.ping'?");
  check_single_error(load("[modules]\nping = 3\n"), 2, 8, "modules.ping",
                     "expected a table ([modules.ping]), found integer");
  check_single_error(load("[modules.ping]\nintervall = 60\n"), 2, 13, "modules.ping.intervall",
                     "unknown option 'modules.ping.intervall'; did you mean 'modules.ping.interval'?");
}

TEST_CASE("Unknown options in a known section, with a suggestion when one is close", "[config][errors]") {
  check_single_error(load("[c2s]\n"
                          "portt = 5222\n"),
                     2, 9, "c2s.portt", "unknown option 'c2s.portt'; did you mean 'c2s.port'?");
  check_single_error(load("[c2s]\nprot = 1\n"), 2, 8, "c2s.prot",
                     "unknown option 'c2s.prot'; did you mean 'c2s.port'?");
  check_single_error(load("[c2s]\nPort = 1\n"), 2, 8, "c2s.Port",
                     "unknown option 'c2s.Port'; did you mean 'c2s.port'?");
  // Edit distance 3: no suggestion.
  check_single_error(load("[c2s]\nportxyz = 1\n"), 2, 11, "c2s.portxyz", "unknown option 'c2s.portxyz'");
  check_single_error(load("[server]\n\nwhatever = true\n"), 3, 12, "server.whatever",
                     "unknown option 'server.whatever'");
  // An inline table where no option is declared is an unknown option; a nested header is an unknown section.
  check_single_error(load("[server]\nx = { y = 1 }\n"), 2, 5, "server.x", "unknown option 'server.x'");
  check_single_error(load("[c2s.tuning]\nx = 1\n"), 1, 1, "", "unknown section 'c2s.tuning'");
}

TEST_CASE("A key above every table is outside any section", "[config][errors]") {
  check_single_error(load("port = 5222\n[c2s]\n"), 1, 8, "port",
                     "option 'port' is outside any section; did you mean 'c2s.port' (under [c2s])?");
  check_single_error(load("\nfoo = \"x\"\n"), 2, 7, "foo",
                     "option 'foo' is outside any section (options go under a [section] table)");
}

TEST_CASE("Wrong types", "[config][errors]") {
  check_single_error(load("[c2s]\nport = \"5222\"\n"), 2, 8, "c2s.port", "expected integer, found string");
  check_single_error(load("[c2s]\nrequire_encryption = 1\n"), 2, 22, "c2s.require_encryption",
                     "expected boolean, found integer");
  check_single_error(load("[server]\nhosts = \"localhost\"\n"), 2, 9, "server.hosts",
                     "expected array of strings, found string");
  check_single_error(load("[server]\ndata_dir = 5\n"), 2, 12, "server.data_dir", "expected string, found integer");
  check_single_error(load("[server]\nthreads = 1.5\n"), 2, 11, "server.threads", "expected integer, found float");
  check_single_error(load("[modules.ping]\nratio = \"x\"\n"), 2, 9, "modules.ping.ratio",
                     "expected float, found string");
  check_single_error(load("[log]\nlevel = [\"info\"]\n"), 2, 9, "log.level", "expected string, found array");
  check_single_error(load("[log]\nfile = 1979-05-27\n"), 2, 8, "log.file", "expected string, found date");
  check_single_error(load("[c2s]\nport = { a = 1 }\n"), 2, 8, "c2s.port", "expected integer, found table");
}

TEST_CASE("Out of range", "[config][errors]") {
  check_single_error(load("[c2s]\nport = 70000\n"), 2, 8, "c2s.port", "must be between 0 and 65535, found 70000");
  check_single_error(load("[c2s]\nport = -1\n"), 2, 8, "c2s.port", "must be between 0 and 65535, found -1");
  check_single_error(load("[auth]\nmax_attempts = 1\n"), 2, 16, "auth.max_attempts",
                     "must be between 2 and 5, found 1");
  check_single_error(load("[modules.ping]\nratio = 1.5\n"), 2, 9, "modules.ping.ratio",
                     "must be between 0.0 and 1.0, found 1.5");
  check_single_error(load("[modules.ping]\nratio = nan\n"), 2, 9, "modules.ping.ratio",
                     "must be between 0.0 and 1.0, found nan");
  // The bounds themselves are allowed.
  Config c = expect_config(load("[c2s]\nport = 65535\nmax_depth = 8\n[modules.ping]\nratio = 0.0\n"));
  CHECK(c.get_int("c2s", "port") == 65535);
  CHECK(c.get_int("c2s", "max_depth") == 8);
}

TEST_CASE("A string not among the choices", "[config][errors]") {
  check_single_error(load("[c2s]\nresource_conflict = \"x\"\n"), 2, 21, "c2s.resource_conflict",
                     "must be one of: kick_old, refuse, found 'x'");
  check_single_error(load("[log]\nlevel = \"INFO\"\n"), 2, 9, "log.level",
                     "must be one of: trace, debug, info, warn, error, off, found 'INFO'");
  // Strings without choices take anything.
  CHECK(expect_config(load("[log]\nfile = \"anything at all\"\n")).get_string("log", "file") == "anything at all");
}

TEST_CASE("Lists: every item must be a string, and among the choices when there are choices", "[config][errors]") {
  Config ok = expect_config(load("[auth]\nmechanisms = [\"SCRAM-SHA-1\", \"PLAIN\"]\n[server]\nhosts = []\n"));
  CHECK(ok.get_list("auth", "mechanisms") == std::vector<std::string>{"SCRAM-SHA-1", "PLAIN"});
  CHECK(ok.get_list("server", "hosts").empty());
  CHECK(ok.is_set("server", "hosts"));

  auto errors = expect_errors(load("[auth]\n"
                                   "mechanisms = [\"PLAIN\", 5, \"MD5\"]\n"));
  INFO(test::describe(errors));
  REQUIRE(errors.size() == 2);
  check_error(errors[0], "test.toml", 2, 24, "auth.mechanisms", "item 2: expected string, found integer");
  check_error(errors[1], "test.toml", 2, 27, "auth.mechanisms",
              "item 3: must be one of: SCRAM-SHA-512-PLUS, SCRAM-SHA-256-PLUS, SCRAM-SHA-1-PLUS, SCRAM-SHA-512, "
              "SCRAM-SHA-256, SCRAM-SHA-1, PLAIN, found 'MD5'");

  auto nested = expect_errors(load("[server]\n"
                                   "hosts = [\n"
                                   "  \"a\",\n"
                                   "  [\"b\"],\n"
                                   "]\n"));
  REQUIRE(nested.size() == 1);
  check_error(nested[0], "test.toml", 4, 3, "server.hosts", "item 2: expected string, found array");
}

TEST_CASE("Every error in a file is reported, in the order of the file", "[config][errors]") {
  const std::string text = "[server]\n"                     // 1
                           "threads = 1000\n"               // 2  out of range
                           "hosts = [\"a\", 1]\n"           // 3  list item
                           "\n"                             // 4
                           "[c2s]\n"                        // 5
                           "portt = 5222\n"                 // 6  unknown option
                           "require_encryption = \"yes\"\n" // 7  wrong type
                           "resource_conflict = \"both\"\n" // 8  choice
                           "[nope]\n"                       // 9  unknown section
                           "[modules.ping]\n"               // 10
                           "interval = 5\n";                // 11 out of range
  auto errors = expect_errors(load(text));
  INFO(test::describe(errors));
  REQUIRE(errors.size() == 7);
  check_error(errors[0], "test.toml", 2, 11, "server.threads", "must be between 0 and 256, found 1000");
  check_error(errors[1], "test.toml", 3, 15, "server.hosts", "item 2: expected string, found integer");
  check_error(errors[2], "test.toml", 6, 9, "c2s.portt", "unknown option 'c2s.portt'; did you mean 'c2s.port'?");
  check_error(errors[3], "test.toml", 7, 22, "c2s.require_encryption", "expected boolean, found string");
  check_error(errors[4], "test.toml", 8, 21, "c2s.resource_conflict", "must be one of: kick_old, refuse, found 'both'");
  check_error(errors[5], "test.toml", 9, 1, "", "unknown section 'nope'");
  check_error(errors[6], "test.toml", 11, 12, "modules.ping.interval", "must be between 10 and 3600, found 5");
  CHECK(errors[2].str() == "test.toml:6:9: key 'c2s.portt': unknown option 'c2s.portt'; did you mean 'c2s.port'?");
}

TEST_CASE("load_file reads the file and names it in errors", "[config][file]") {
  auto dir = std::filesystem::temp_directory_path() / ("cg-config-test-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string good = (dir / "good.toml").string();
  const std::string bad = (dir / "bad.toml").string();
  std::ofstream(good) << "[c2s]\nport = 5300\n";
  std::ofstream(bad) << "[c2s]\nport = 5300\nportt = 1\n";

  Config c = expect_config(load_file(good, test::schema_with_ping()));
  CHECK(c.source() == good);
  CHECK(c.get_int("c2s", "port") == 5300);
  CHECK(c.is_set("c2s", "port"));

  auto errors = expect_errors(load_file(bad, test::schema_with_ping()));
  REQUIRE(errors.size() == 1);
  check_error(errors[0], bad, 3, 9, "c2s.portt", "unknown option 'c2s.portt'; did you mean 'c2s.port'?");
  CHECK(errors[0].str() == bad + ":3:9: key 'c2s.portt': unknown option 'c2s.portt'; did you mean 'c2s.port'?");

  const std::string missing = (dir / "missing.toml").string();
  auto not_found = expect_errors(load_file(missing, test::schema_with_ping()));
  REQUIRE(not_found.size() == 1);
  check_error(not_found[0], missing, 0, 0, "", "cannot read file: No such file or directory");
  CHECK(not_found[0].str() == missing + ": cannot read file: No such file or directory");

  auto is_dir = expect_errors(load_file(dir.string(), test::schema_with_ping()));
  REQUIRE(is_dir.size() == 1);
  check_error(is_dir[0], dir.string(), 0, 0, "", "cannot read file: Is a directory");

  std::filesystem::remove_all(dir);
}
