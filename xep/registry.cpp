// Every module, one line each. Adding a XEP: one file in xep/, one line here.
#include "xep/registry.hpp"

#include "xep/rfc6121_presence.hpp"
#include "xep/rfc6121_roster.hpp"
#include "xep/xep0012_last.hpp"
#include "xep/xep0030_disco.hpp"
#include "xep/xep0049_private.hpp"
#include "xep/xep0050_adhoc.hpp"
#include "xep/xep0054_vcard.hpp"
#include "xep/xep0077_register.hpp"
#include "xep/xep0092_version.hpp"
#include "xep/xep0160_offline.hpp"
#include "xep/xep0191_blocking.hpp"
#include "xep/xep0199_ping.hpp"
#include "xep/xep0202_time.hpp"
#include "xep/xep0280_carbons.hpp"
#include "xep/xep0313_mam.hpp"

namespace cg::xep {

const std::vector<api::ModuleFactory>& module_registry() {
  static const std::vector<api::ModuleFactory> registry{
      &disco::make_module,    // XEP-0030 Service Discovery
      &ping::make_module,     // XEP-0199 XMPP Ping
      &version::make_module,  // XEP-0092 Software Version
      &time::make_module,     // XEP-0202 Entity Time
      &roster::make_module,   // RFC 6121 §2 Roster (XEP-0237 versioning)
      &presence::make_module, // RFC 6121 §3–4 Presence and subscriptions
      &vcard::make_module,    // XEP-0054 vcard-temp
      &priv::make_module,     // XEP-0049 Private XML Storage
      &reg::make_module,      // XEP-0077 In-Band Registration (off by default)
      &last::make_module,     // XEP-0012 Last Activity
      &blocking::make_module, // XEP-0191 Blocking Command
      &mam::make_module,      // XEP-0313 Message Archive Management
      &carbons::make_module,  // XEP-0280 Message Carbons
      &offline::make_module,  // XEP-0160 Offline messages
      &adhoc::make_module,    // XEP-0050 Ad-Hoc Commands (and the server's uptime command)
  };
  return registry;
}

} // namespace cg::xep
