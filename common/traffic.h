// Traffic for measuring faults: the sandbox pods' workload server (TCP echo,
// sink, source, UDP echo, a minimal HTTP responder) and the client probes that
// the demo, the tests and the benchmarks measure with. Everything acts in the
// network namespace of the calling thread (wrap in run_in_netns()).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/fd.h"
#include "common/result.h"

namespace nq::traffic {

using std::chrono::nanoseconds;

struct Ports {
  uint16_t echo = 7;     // TCP and UDP echo
  uint16_t sink = 9;     // TCP: reads until EOF, then reports bytes and time
  uint16_t source = 19;  // TCP: writes until the peer closes
  uint16_t http = 8080;  // HTTP/1.0: 200 with the server's name
};

// A single-threaded epoll server on all four ports.
class Server {
 public:
  // Binds every port on `bind_address` ("0.0.0.0", "::", an address).
  static Result<std::unique_ptr<Server>> create(const std::string& bind_address, const Ports& ports,
                                                std::string name);
  ~Server();
  // Serves until stop(); returns an error only if the event loop itself fails.
  Status run();
  // Thread-safe and async-signal-safe.
  void stop() noexcept;

 private:
  struct Impl;
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Time to complete a TCP handshake. DeadlineExceeded after `timeout`
// (e.g. the SYN is dropped), Unavailable when refused or unreachable.
Result<nanoseconds> tcp_connect(const std::string& ip, uint16_t port, nanoseconds timeout);

// The client probes below take an optional `priority`: when nonzero it is
// set as SO_PRIORITY on the probe's socket (before connecting), which is how
// tests classify their packets into a qdisc class the way the netfault BPF
// program does (skb->priority = class id). Values above 6 need CAP_NET_ADMIN.

// Round-trip times of `count` 64-byte exchanges over one TCP echo connection.
Result<std::vector<nanoseconds>> tcp_echo_rtt(const std::string& ip, uint16_t port, int count,
                                              nanoseconds timeout, uint32_t priority = 0);

struct Throughput {
  uint64_t bytes = 0;
  nanoseconds elapsed{0};
  double bits_per_second() const;
};

// Receives from the source port for `duration` (data flows server -> caller).
Result<Throughput> tcp_download(const std::string& ip, uint16_t port, nanoseconds duration,
                                uint32_t priority = 0);
// Sends to the sink port for `duration` (data flows caller -> server); the
// figure is the server's: bytes it received between first byte and EOF.
Result<Throughput> tcp_upload(const std::string& ip, uint16_t port, nanoseconds duration,
                              uint32_t priority = 0);

struct UdpProbeResult {
  int sent = 0;
  int received = 0;    // distinct sequence numbers answered
  int duplicates = 0;  // answers beyond the first per sequence number
  int corrupted = 0;   // answers whose payload checksum did not match
  std::vector<nanoseconds> rtts;
  // When each answered probe was sent (steady clock, since its epoch), in
  // the order of rtts.
  std::vector<nanoseconds> sent_at;
  double loss_ratio() const { return sent ? 1.0 - double(received) / sent : 0.0; }
};

// `count` datagrams to a UDP echo port, one every `interval`, then waits `linger`
// for late answers.
Result<UdpProbeResult> udp_echo_probe(const std::string& ip, uint16_t port, int count,
                                      nanoseconds interval, nanoseconds linger,
                                      uint32_t priority = 0);

// One HTTP/1.0 GET; returns the status code.
Result<int> http_get(const std::string& ip, uint16_t port, const std::string& path,
                     nanoseconds timeout);

struct Summary {
  size_t n = 0;
  double mean = 0, stddev = 0, min = 0, max = 0, p50 = 0, p99 = 0;
};
// Sample statistics (stddev with n-1); percentiles by nearest rank.
Summary summarize(std::vector<double> samples);
std::vector<double> to_millis(const std::vector<nanoseconds>& v);

}  // namespace nq::traffic
