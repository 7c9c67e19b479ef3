// The MPI transport a rank uses, read from what the library loaded (dist/transport.h). A plain TU:
// no MPI or torch headers, so the parsing is tested without a world.
#include "modtrain/dist/transport.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "modtrain/core/text.h"
#include "modtrain/dist/device.h"

namespace modtrain {

std::string describe_mpi_transport(const std::string& library_version, const std::string& maps) {
  // The library: "Open MPI v4.1.4, package: ..." -> "Open MPI v4.1.4"; others: their first line.
  std::string library = library_version.substr(0, library_version.find_first_of(",\n"));
  while (!library.empty() && (library.back() == ' ' || library.back() == '\0')) library.pop_back();
  if (library.size() > 60) library = library.substr(0, 57) + "...";
  if (library.empty()) library = "MPI";
  // Open MPI's components: mca_<framework>_<component>.so, in load order, each once.
  std::map<std::string, std::vector<std::string>> loaded;
  static const std::regex component(R"(mca_(pml|btl|mtl)_([A-Za-z0-9]+)\.so)");
  std::smatch m;
  for (size_t at = maps.find("mca_"); at != std::string::npos; at = maps.find("mca_", at + 4)) {
    const size_t end = maps.find('\n', at);
    const std::string name = maps.substr(at, end == std::string::npos ? std::string::npos : end - at);
    if (!std::regex_search(name, m, component)) continue;
    std::vector<std::string>& names = loaded[m[1].str()];
    if (std::find(names.begin(), names.end(), m[2].str()) == names.end()) names.push_back(m[2].str());
  }
  if (loaded.empty()) return library + " (its transport is not shown to the process; see the library's own logging)";
  const std::vector<std::string>& pmls = loaded["pml"];
  // ob1 (point to point over BTLs) keeps the monitoring PML beside it when asked for; ignore that one.
  std::string pml;
  for (const std::string& p : pmls)
    if (p != "monitoring") pml = p;
  if (pml.empty()) return library + ": no point-to-point layer loaded";
  if (pml == "ucx")
    return library + ": pml ucx (UCX picks the devices; UCX_LOG_LEVEL=info shows which, UCX_TLS restricts them)";
  if (pml == "cm") {
    const std::vector<std::string>& mtls = loaded["mtl"];
    return library + ": pml cm, mtl " + (mtls.empty() ? std::string("(none)") : text::join(mtls, "+"));
  }
  // ob1 and the like: BTLs. Shared memory within a node; the rest reach other nodes.
  static const std::set<std::string> node_local = {"self", "sm", "vader", "smcuda"};
  std::vector<std::string> within, between;
  for (const std::string& b : loaded["btl"]) {
    if (b == "self") continue;
    (node_local.count(b) ? within : between).push_back(b);
  }
  std::string out = library + ": pml " + pml;
  out += ", within a node " + (within.empty() ? std::string("(none)") : text::join(within, "+"));
  out += ", between nodes " + (between.empty() ? std::string("(none)") : text::join(between, "+"));
  return out;
}

std::string describe_nccl_transport(const std::string& log) {
  // Lines as NCCL 2.x writes them at start-up (INIT and NET):
  //   "host:123:456 [0] NCCL INFO Using network IB"
  //   "host:123:456 [0] NCCL INFO NET/IB : Using [0]mlx5_0:1/IB [1]mlx5_1:1/RoCE ; OOB ib0:10.0.0.1<0>"
  //   "host:123:456 [0] NCCL INFO NET/Socket : Using [0]eth0:10.0.0.1<0>"
  //   "host:123:456 [0] NCCL INFO Channel 00/0 : 0[0] -> 1[1] via P2P/IPC"
  //   "host:123:456 [0] NCCL INFO Channel 00/0 : 1[1] -> 2[0] [send] via NET/IB/0/GDRDMA"
  static const std::regex network(R"(NCCL INFO Using network ([^\r\n]+))");
  static const std::regex devices(R"(NCCL INFO NET/[A-Za-z]+ : Using ([^;\r\n]+))");
  static const std::regex device(R"(\[\d+\]([^\s<]+))");
  static const std::regex channel(R"(NCCL INFO Channel .* via ([A-Za-z0-9/]+))");
  std::string net;
  std::vector<std::string> nics, via;
  std::smatch m;
  for (size_t start = 0; start < log.size();) {
    size_t end = log.find('\n', start);
    if (end == std::string::npos) end = log.size();
    const std::string line = log.substr(start, end - start);
    start = end + 1;
    if (std::regex_search(line, m, network)) {
      net = m[1].str();
    } else if (std::regex_search(line, m, devices)) {
      const std::string list = m[1].str();
      for (std::sregex_iterator it(list.begin(), list.end(), device), e; it != e; ++it)
        if (std::find(nics.begin(), nics.end(), (*it)[1].str()) == nics.end()) nics.push_back((*it)[1].str());
    } else if (std::regex_search(line, m, channel)) {
      // "NET/IB/0/GDRDMA" -> "NET/IB/GDRDMA": the device index differs per channel, the kind does not
      std::vector<std::string> parts;
      std::stringstream path(m[1].str());
      for (std::string part; std::getline(path, part, '/');) parts.push_back(part);
      std::string kind = parts[0] + (parts.size() > 1 ? "/" + parts[1] : "");
      for (size_t k = 2; k < parts.size(); ++k)
        if (!parts[k].empty() && !std::isdigit(static_cast<unsigned char>(parts[k][0]))) kind += "/" + parts[k];
      if (std::find(via.begin(), via.end(), kind) == via.end()) via.push_back(kind);
    }
  }
  while (!net.empty() && (net.back() == ' ' || net.back() == '\r')) net.pop_back();
  std::vector<std::string> parts;
  if (!net.empty()) parts.push_back("network " + net + (nics.empty() ? "" : " (" + text::join(nics, ", ") + ")"));
  if (!via.empty()) parts.push_back("channels via " + text::join(via, ", "));
  return text::join(parts, ", ");
}

std::string transport_summary(const std::string& library, const std::vector<std::string>& transports,
                              const std::vector<std::string>& hosts, bool* differs) {
  std::vector<std::string> order;
  std::map<std::string, std::vector<size_t>> ranks;
  for (size_t r = 0; r < transports.size(); ++r) {
    if (ranks[transports[r]].empty()) order.push_back(transports[r]);
    ranks[transports[r]].push_back(r);
  }
  if (differs) *differs = order.size() > 1;
  if (order.size() <= 1)
    return library + " transport: " + (order.empty() ? std::string("(none)") : order[0]) + " (every rank)";
  std::vector<std::string> parts;
  for (const std::string& t : order) parts.push_back(t + " (" + ranks_on_hosts(ranks[t], hosts) + ")");
  return library + " transport differs between ranks: " + text::join(parts, "; ");
}

}  // namespace modtrain
