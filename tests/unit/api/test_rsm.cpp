// XEP-0059: Result Set Management 1.0 — the spec's examples parsed and serialised, and what is refused.
#include "server/api/rsm.hpp"
#include "server/api/xml.hpp"

#include <catch2/catch.hpp>

using cg::api::Element;
using cg::api::StanzaError;
namespace rsm = cg::api::rsm;

namespace {

Element xml(std::string_view text) {
  std::string error;
  auto el = cg::api::parse_xml(text, &error);
  INFO(error);
  REQUIRE(el);
  return *el;
}

rsm::Request request(std::string_view text) {
  auto r = rsm::Request::parse(xml(text));
  if (auto* err = std::get_if<StanzaError>(&r)) {
    FAIL("unexpected error: " << err->text);
  }
  return std::get<rsm::Request>(r);
}

rsm::Response response(std::string_view text) {
  auto r = rsm::Response::parse(xml(text));
  if (auto* err = std::get_if<StanzaError>(&r)) {
    FAIL("unexpected error: " << err->text);
  }
  return std::get<rsm::Response>(r);
}

std::string refused(std::string_view text) {
  auto r = rsm::Request::parse(xml(text));
  auto* err = std::get_if<StanzaError>(&r);
  REQUIRE(err != nullptr);
  return err->condition;
}

} // namespace

TEST_CASE("XEP-0059 §2.1 examples 1-2: limiting the number of items, and the first page's <set/>", "[xep0059][spec]") {
  // Example 1: "Requesting a limit to the number of items".
  auto r = request("<set xmlns='http://jabber.org/protocol/rsm'><max>10</max></set>");
  CHECK(r.max == 10u);
  CHECK_FALSE(r.after);
  CHECK_FALSE(r.before);
  CHECK_FALSE(r.index);
  CHECK(cg::api::to_xml(r.to_element()) == "<set xmlns='http://jabber.org/protocol/rsm'><max>10</max></set>");

  // Example 2: "Returning a limited result set".
  const char* ex2 = "<set xmlns='http://jabber.org/protocol/rsm'><first index='0'>stpeter@jabber.org</first>"
                    "<last>peterpan@neverland.lit</last><count>800</count></set>";
  auto p = response(ex2);
  CHECK(p.first == "stpeter@jabber.org");
  CHECK(p.first_index == 0u);
  CHECK(p.last == "peterpan@neverland.lit");
  CHECK(p.count == 800u);
  CHECK(cg::api::to_xml(p.to_element()) == ex2);
}

TEST_CASE("XEP-0059 §2.2-2.5: paging forwards with <after/>, backwards with <before/>, the last page with an empty "
          "<before/>",
          "[xep0059][spec]") {
  // Example 3: "Requesting the next page of a result set".
  auto next =
      request("<set xmlns='http://jabber.org/protocol/rsm'><max>10</max><after>peterpan@neverland.lit</after></set>");
  CHECK(next.after == "peterpan@neverland.lit");
  CHECK_FALSE(next.last_page());

  // Example 6: "Requesting the previous page of a result set".
  auto prev =
      request("<set xmlns='http://jabber.org/protocol/rsm'><max>10</max><before>peter@pixyland.org</before></set>");
  CHECK(prev.before == "peter@pixyland.org");
  CHECK_FALSE(prev.last_page());

  // Example 9: "Requesting the last page of a result set".
  auto last = request("<set xmlns='http://jabber.org/protocol/rsm'><max>10</max><before/></set>");
  REQUIRE(last.before);
  CHECK(last.before->empty());
  CHECK(last.last_page());
  CHECK(cg::api::to_xml(last.to_element()) ==
        "<set xmlns='http://jabber.org/protocol/rsm'><max>10</max><before/></set>");
}

TEST_CASE("XEP-0059 §2.6-2.7: <index/> for out-of-order pages, <max>0</max> for the count only, an empty page",
          "[xep0059][spec]") {
  // Example 11: "Requesting a result page by index".
  auto r = request("<set xmlns='http://jabber.org/protocol/rsm'><max>10</max><index>371</index></set>");
  CHECK(r.index == 371u);
  CHECK(cg::api::to_xml(r.to_element()) ==
        "<set xmlns='http://jabber.org/protocol/rsm'><max>10</max><index>371</index></set>");

  // Example 13: "Requesting the item count".
  auto count = request("<set xmlns='http://jabber.org/protocol/rsm'><max>0</max></set>");
  CHECK(count.max == 0u);
  // Example 14: "Returning the item count" — no <first/> or <last/>.
  rsm::Response only_count;
  only_count.count = 800;
  CHECK(cg::api::to_xml(only_count.to_element()) ==
        "<set xmlns='http://jabber.org/protocol/rsm'><count>800</count></set>");
  auto parsed = response("<set xmlns='http://jabber.org/protocol/rsm'><count>800</count></set>");
  CHECK_FALSE(parsed.first);
  CHECK_FALSE(parsed.last);
  CHECK(parsed.count == 800u);
}

TEST_CASE("RSM: malformed <set/> elements are bad-request", "[xep0059]") {
  CHECK(refused("<set xmlns='http://jabber.org/protocol/rsm'><max>ten</max></set>") == "bad-request");
  CHECK(refused("<set xmlns='http://jabber.org/protocol/rsm'><max>-1</max></set>") == "bad-request");
  CHECK(refused("<set xmlns='http://jabber.org/protocol/rsm'><max>1</max><max>2</max></set>") == "bad-request");
  CHECK(refused("<set xmlns='http://jabber.org/protocol/rsm'><index>x</index></set>") == "bad-request");
  CHECK(refused("<set xmlns='http://jabber.org/protocol/rsm'><after/></set>") == "bad-request");
  CHECK(refused("<set xmlns='urn:example'><max>1</max></set>") == "bad-request");
  // Whitespace around a number is tolerated (xs:nonNegativeInteger's whitespace facet is "collapse").
  CHECK(request("<set xmlns='http://jabber.org/protocol/rsm'><max> 5 </max></set>").max == 5u);
  // Foreign elements are ignored.
  CHECK(request("<set xmlns='http://jabber.org/protocol/rsm'><max>5</max><x xmlns='urn:example'/></set>").max == 5u);
  auto bad_index =
      rsm::Response::parse(xml("<set xmlns='http://jabber.org/protocol/rsm'><first index='a'>x</first></set>"));
  CHECK(std::holds_alternative<StanzaError>(bad_index));
}
