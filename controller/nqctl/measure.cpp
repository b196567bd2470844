#include "controller/nqctl/measure.h"

#include <cstdio>

#include "common/traffic.h"

namespace nq::nqctl {
namespace {

using nlohmann::json;
namespace traffic = nq::traffic;

constexpr uint16_t kEcho = 7, kSink = 9, kSource = 19;

double ms(std::chrono::nanoseconds d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

json summary_json(const std::vector<std::chrono::nanoseconds>& samples) {
  const traffic::Summary s = traffic::summarize(traffic::to_millis(samples));
  return {{"n", s.n},        {"mean_ms", s.mean}, {"stddev_ms", s.stddev}, {"min_ms", s.min},
          {"p50_ms", s.p50}, {"p99_ms", s.p99},   {"max_ms", s.max}};
}

json throughput_json(const Result<traffic::Throughput>& t) {
  if (!t.ok()) return {{"error", t.error().message()}};
  return {{"bytes", t->bytes},
          {"seconds", ms(t->elapsed) / 1000.0},
          {"bits_per_second", t->bits_per_second()}};
}

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), f, v);
  return buf;
}

std::string rate(double bps) {
  if (bps >= 1e9) return fmt("%.2f Gbit/s", bps / 1e9);
  if (bps >= 1e6) return fmt("%.2f Mbit/s", bps / 1e6);
  return fmt("%.1f kbit/s", bps / 1e3);
}

std::string summary_text(const json& s) {
  return "n=" + std::to_string(s["n"].get<size_t>()) + " mean " +
         fmt("%.3f", s["mean_ms"].get<double>()) + " ms, p50 " +
         fmt("%.3f", s["p50_ms"].get<double>()) + ", p99 " +
         fmt("%.3f", s["p99_ms"].get<double>()) + ", min " +
         fmt("%.3f", s["min_ms"].get<double>()) + ", max " +
         fmt("%.3f", s["max_ms"].get<double>()) + ", stddev " +
         fmt("%.3f", s["stddev_ms"].get<double>());
}

}  // namespace

json measure(const Netns& from, const std::string& ip, const MeasureRequest& req) {
  json out = {{"to_ip", ip}};
  // Everything runs on one thread inside the source pod's netns.
  Status st = run_in_netns(from, [&]() -> Status {
    if (req.connect) {
      auto c = traffic::tcp_connect(ip, kEcho, req.timeout);
      out["connect"] = c.ok() ? json{{"ms", ms(*c)}} : json{{"error", c.error().message()}};
    }
    if (req.rtt > 0) {
      auto r = traffic::tcp_echo_rtt(ip, kEcho, req.rtt, req.timeout);
      out["tcp_rtt"] = r.ok() ? summary_json(*r) : json{{"error", r.error().message()}};
    }
    if (req.throughput) {
      out["download"] = throughput_json(traffic::tcp_download(ip, kSource, *req.throughput));
      out["upload"] = throughput_json(traffic::tcp_upload(ip, kSink, *req.throughput));
    }
    if (req.udp > 0) {
      auto u = traffic::udp_echo_probe(ip, kEcho, req.udp, std::chrono::milliseconds(5),
                                       std::chrono::milliseconds(500));
      if (u.ok()) {
        out["udp"] = {{"sent", u->sent},
                      {"received", u->received},
                      {"loss_ratio", u->loss_ratio()},
                      {"duplicates", u->duplicates},
                      {"corrupted", u->corrupted}};
        if (!u->rtts.empty()) out["udp"]["rtt"] = summary_json(u->rtts);
      } else {
        out["udp"] = {{"error", u.error().message()}};
      }
    }
    return ok();
  });
  if (!st.ok()) out["error"] = st.error().message();
  return out;
}

std::string render_measurement(const json& m) {
  std::string s;
  const auto line = [&](const char* what, const std::string& text) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "  %-12s ", what);
    s += buf + text + "\n";
  };
  if (m.contains("error")) line("error", m["error"].get<std::string>());
  if (m.contains("connect")) {
    const json& c = m["connect"];
    line("connect", c.contains("error") ? "failed: " + c["error"].get<std::string>()
                                        : fmt("%.3f ms", c["ms"].get<double>()));
  }
  if (m.contains("tcp_rtt")) {
    const json& r = m["tcp_rtt"];
    line("tcp rtt",
         r.contains("error") ? "failed: " + r["error"].get<std::string>() : summary_text(r));
  }
  for (const char* dir : {"download", "upload"}) {
    if (!m.contains(dir)) continue;
    const json& t = m[dir];
    line(dir, t.contains("error") ? "failed: " + t["error"].get<std::string>()
                                  : rate(t["bits_per_second"].get<double>()) + " (" +
                                        std::to_string(t["bytes"].get<uint64_t>()) + " bytes in " +
                                        fmt("%.2f s", t["seconds"].get<double>()) + ")");
  }
  if (m.contains("udp")) {
    const json& u = m["udp"];
    if (u.contains("error")) {
      line("udp", "failed: " + u["error"].get<std::string>());
    } else {
      std::string t = std::to_string(u["sent"].get<int>()) + " sent, " +
                      std::to_string(u["received"].get<int>()) + " answered (" +
                      fmt("%.1f%% loss", 100.0 * u["loss_ratio"].get<double>()) + "), " +
                      std::to_string(u["duplicates"].get<int>()) + " duplicates, " +
                      std::to_string(u["corrupted"].get<int>()) + " corrupted";
      if (u.contains("rtt")) t += "; rtt " + summary_text(u["rtt"]);
      line("udp", t);
    }
  }
  return s;
}

}  // namespace nq::nqctl
