#include "common/traffic.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <map>
#include <numeric>
#include <set>

namespace nq::traffic {
namespace {

using Clock = std::chrono::steady_clock;

struct SockAddr {
  sockaddr_storage storage{};
  socklen_t len = 0;
  int family() const { return storage.ss_family; }
  const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
};

Result<SockAddr> make_addr(const std::string& ip, uint16_t port) {
  SockAddr a;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&a.storage);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&a.storage);
  if (::inet_pton(AF_INET, ip.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    a.len = sizeof(*v4);
  } else if (::inet_pton(AF_INET6, ip.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    a.len = sizeof(*v6);
  } else {
    return Error::invalid_argument("address", "\"" + ip + "\" is not an IP address");
  }
  return a;
}

std::string where(const std::string& ip, uint16_t port) {
  return ip + ":" + std::to_string(port);
}

// poll() on one fd until `deadline`, to the nanosecond: poll()'s whole
// milliseconds would round the last one down to 0 and spin through it, which
// at real-time priority trips the kernel's RT throttling.
int poll_until(pollfd& p, Clock::time_point deadline) {
  const auto left = std::max(Clock::duration::zero(), deadline - Clock::now());
  const auto secs = std::chrono::duration_cast<std::chrono::seconds>(left);
  const timespec ts{static_cast<time_t>(secs.count()),
                    static_cast<long>(std::chrono::nanoseconds(left - secs).count())};
  return ::ppoll(&p, 1, &ts, nullptr);
}

// Waits for `events` on fd until `deadline`; DeadlineExceeded on timeout.
Status wait_for(int fd, short events, Clock::time_point deadline, const std::string& what) {
  for (;;) {
    pollfd p{fd, events, 0};
    int rc = poll_until(p, deadline);
    if (rc > 0) return ok();
    if (rc == 0) return Error::status(Code::kDeadlineExceeded, what + ": timed out");
    if (errno != EINTR) return Error::from_errno(errno, what + ": poll");
  }
}

// SO_PRIORITY for a probe socket; 0 leaves the socket's default.
Status set_priority(int fd, uint32_t priority) {
  if (priority == 0) return ok();
  const int value = static_cast<int>(priority);
  if (::setsockopt(fd, SOL_SOCKET, SO_PRIORITY, &value, sizeof(value)) < 0)
    return Error::from_errno(errno, "setsockopt SO_PRIORITY " + std::to_string(priority));
  return ok();
}

// A non-blocking connected TCP socket, or the reason it is not.
Result<UniqueFd> connect_tcp(const std::string& ip, uint16_t port, Clock::time_point deadline,
                             uint32_t priority = 0) {
  NQ_ASSIGN_OR_RETURN(SockAddr addr, make_addr(ip, port));
  UniqueFd fd(::socket(addr.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return Error::from_errno(errno, "socket");
  NQ_TRY(set_priority(fd.get(), priority));
  const int one = 1;
  ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if (::connect(fd.get(), addr.get(), addr.len) < 0 && errno != EINPROGRESS)
    return Error::from_errno(errno, "connect " + where(ip, port));
  NQ_TRY(wait_for(fd.get(), POLLOUT, deadline, "connect " + where(ip, port)));
  int err = 0;
  socklen_t len = sizeof(err);
  ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
  if (err == ECONNREFUSED || err == EHOSTUNREACH || err == ENETUNREACH)
    return Error::status(Code::kUnavailable,
                         "connect " + where(ip, port) + ": " + std::strerror(err));
  if (err != 0) return Error::from_errno(err, "connect " + where(ip, port));
  return fd;
}

Status send_all(int fd, const void* data, size_t len, Clock::time_point deadline,
                const std::string& what) {
  const auto* p = static_cast<const uint8_t*>(data);
  while (len > 0) {
    ssize_t n = ::send(fd, p, len, MSG_NOSIGNAL);
    if (n > 0) {
      p += n;
      len -= static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EAGAIN) return Error::from_errno(errno, what + ": send");
    NQ_TRY(wait_for(fd, POLLOUT, deadline, what));
  }
  return ok();
}

Status recv_exact(int fd, void* data, size_t len, Clock::time_point deadline,
                  const std::string& what) {
  auto* p = static_cast<uint8_t*>(data);
  while (len > 0) {
    ssize_t n = ::recv(fd, p, len, 0);
    if (n > 0) {
      p += n;
      len -= static_cast<size_t>(n);
      continue;
    }
    if (n == 0) return Error::status(Code::kAborted, what + ": connection closed by peer");
    if (errno == EINTR) continue;
    if (errno != EAGAIN) return Error::from_errno(errno, what + ": recv");
    NQ_TRY(wait_for(fd, POLLIN, deadline, what));
  }
  return ok();
}

uint32_t fnv1a(const uint8_t* p, size_t n) {
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 16777619u;
  return h;
}

// ---------------------------------------------------------------- server

enum class Role {
  kEchoListen,
  kSinkListen,
  kSourceListen,
  kHttpListen,
  kUdpEcho,
  kEcho,
  kSink,
  kSource,
  kHttp,
  kStop
};

struct Conn {
  UniqueFd fd;
  Role role;
  std::string buffer;  // echo: pending output; http: request so far
  uint64_t bytes = 0;  // sink
  Clock::time_point first{}, last{};
};

}  // namespace

double Throughput::bits_per_second() const {
  const double secs = std::chrono::duration<double>(elapsed).count();
  return secs > 0 ? static_cast<double>(bytes) * 8.0 / secs : 0.0;
}

struct Server::Impl {
  std::string name;
  UniqueFd epoll;
  UniqueFd stop_fd;
  std::map<int, Conn> conns;

  Status watch(UniqueFd fd, Role role, uint32_t events) {
    epoll_event ev{};
    ev.events = events;
    ev.data.fd = fd.get();
    if (::epoll_ctl(epoll.get(), EPOLL_CTL_ADD, fd.get(), &ev) < 0)
      return Error::from_errno(errno, "epoll_ctl");
    const int key = fd.get();
    conns.emplace(key, Conn{std::move(fd), role, {}, 0, {}, {}});
    return ok();
  }

  void close_conn(int fd) { conns.erase(fd); }  // closing removes it from the epoll set

  Status listen_on(const std::string& bind, uint16_t port, int type, Role role) {
    NQ_ASSIGN_OR_RETURN(SockAddr addr, make_addr(bind, port));
    UniqueFd fd(::socket(addr.family(), type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd) return Error::from_errno(errno, "socket");
    const int one = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (::bind(fd.get(), addr.get(), addr.len) < 0)
      return Error::from_errno(errno, "bind " + where(bind, port));
    if (type == SOCK_STREAM && ::listen(fd.get(), 128) < 0)
      return Error::from_errno(errno, "listen " + where(bind, port));
    return watch(std::move(fd), role, EPOLLIN);
  }

  void accept_on(int lfd, Role role) {
    for (;;) {
      UniqueFd c(::accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
      if (!c) return;  // EAGAIN or a transient error: the next event retries
      const int one = 1;
      ::setsockopt(c.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      uint32_t events = role == Role::kSource ? EPOLLOUT | EPOLLIN : EPOLLIN;
      if (!watch(std::move(c), role, events).ok()) return;
    }
  }

  void on_udp(int fd) {
    std::array<uint8_t, 65536> buf{};
    for (;;) {
      sockaddr_storage from{};
      socklen_t len = sizeof(from);
      ssize_t n =
          ::recvfrom(fd, buf.data(), buf.size(), 0, reinterpret_cast<sockaddr*>(&from), &len);
      if (n < 0) return;
      ::sendto(fd, buf.data(), static_cast<size_t>(n), 0, reinterpret_cast<sockaddr*>(&from), len);
    }
  }

  void on_stream(int fd, uint32_t events) {
    Conn& c = conns.at(fd);
    std::array<char, 65536> buf{};
    if (c.role == Role::kSource) {
      if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
        if (n == 0 || (n < 0 && errno != EAGAIN)) return close_conn(fd);
      }
      if (events & EPOLLOUT) {
        buf.fill('x');
        while (::send(fd, buf.data(), buf.size(), MSG_NOSIGNAL) > 0) {
        }
        if (errno != EAGAIN) return close_conn(fd);
      }
      return;
    }
    for (;;) {
      ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
      if (n < 0) {
        if (errno == EAGAIN) return;
        return close_conn(fd);
      }
      if (n == 0) {
        if (c.role == Role::kSink) {
          // Report what arrived: 8 bytes count, 8 bytes nanoseconds first..last byte.
          uint64_t report[2] = {c.bytes, static_cast<uint64_t>((c.last - c.first).count())};
          ::send(fd, report, sizeof(report), MSG_NOSIGNAL);
        }
        return close_conn(fd);
      }
      const auto now = Clock::now();
      switch (c.role) {
        case Role::kEcho:
          // Echo payloads are small probes; a blocking-free best effort is enough.
          ::send(fd, buf.data(), static_cast<size_t>(n), MSG_NOSIGNAL);
          break;
        case Role::kSink:
          if (c.bytes == 0) c.first = now;
          c.bytes += static_cast<uint64_t>(n);
          c.last = now;
          break;
        case Role::kHttp:
          c.buffer.append(buf.data(), static_cast<size_t>(n));
          if (c.buffer.find("\r\n\r\n") != std::string::npos || c.buffer.size() > 8192) {
            const std::string body = name + "\n";
            const std::string resp =
                "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " +
                std::to_string(body.size()) + "\r\n\r\n" + body;
            ::send(fd, resp.data(), resp.size(), MSG_NOSIGNAL);
            return close_conn(fd);
          }
          break;
        default:
          break;
      }
    }
  }
};

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Server::~Server() = default;

Result<std::unique_ptr<Server>> Server::create(const std::string& bind_address, const Ports& ports,
                                               std::string name) {
  auto impl = std::make_unique<Impl>();
  impl->name = std::move(name);
  impl->epoll = UniqueFd(::epoll_create1(EPOLL_CLOEXEC));
  if (!impl->epoll) return Error::from_errno(errno, "epoll_create1");
  impl->stop_fd = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!impl->stop_fd) return Error::from_errno(errno, "eventfd");
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = impl->stop_fd.get();
  if (::epoll_ctl(impl->epoll.get(), EPOLL_CTL_ADD, impl->stop_fd.get(), &ev) < 0)
    return Error::from_errno(errno, "epoll_ctl");
  NQ_TRY(impl->listen_on(bind_address, ports.echo, SOCK_STREAM, Role::kEchoListen));
  NQ_TRY(impl->listen_on(bind_address, ports.echo, SOCK_DGRAM, Role::kUdpEcho));
  NQ_TRY(impl->listen_on(bind_address, ports.sink, SOCK_STREAM, Role::kSinkListen));
  NQ_TRY(impl->listen_on(bind_address, ports.source, SOCK_STREAM, Role::kSourceListen));
  NQ_TRY(impl->listen_on(bind_address, ports.http, SOCK_STREAM, Role::kHttpListen));
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

void Server::stop() noexcept {
  const uint64_t one = 1;
  // A full eventfd counter still wakes the loop; nothing to handle.
  [[maybe_unused]] ssize_t n = ::write(impl_->stop_fd.get(), &one, sizeof(one));
}

Status Server::run() {
  std::array<epoll_event, 64> events{};
  for (;;) {
    int n = ::epoll_wait(impl_->epoll.get(), events.data(), events.size(), -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::from_errno(errno, "epoll_wait");
    }
    for (int i = 0; i < n; ++i) {
      const int fd = events[i].data.fd;
      if (fd == impl_->stop_fd.get()) return ok();
      auto it = impl_->conns.find(fd);
      if (it == impl_->conns.end()) continue;  // closed earlier in this batch
      switch (it->second.role) {
        case Role::kEchoListen:
          impl_->accept_on(fd, Role::kEcho);
          break;
        case Role::kSinkListen:
          impl_->accept_on(fd, Role::kSink);
          break;
        case Role::kSourceListen:
          impl_->accept_on(fd, Role::kSource);
          break;
        case Role::kHttpListen:
          impl_->accept_on(fd, Role::kHttp);
          break;
        case Role::kUdpEcho:
          impl_->on_udp(fd);
          break;
        default:
          impl_->on_stream(fd, events[i].events);
          break;
      }
    }
  }
}

// ---------------------------------------------------------------- clients

Result<nanoseconds> tcp_connect(const std::string& ip, uint16_t port, nanoseconds timeout) {
  const auto start = Clock::now();
  NQ_ASSIGN_OR_RETURN(UniqueFd fd, connect_tcp(ip, port, start + timeout));
  return std::chrono::duration_cast<nanoseconds>(Clock::now() - start);
}

Result<std::vector<nanoseconds>> tcp_echo_rtt(const std::string& ip, uint16_t port, int count,
                                              nanoseconds timeout, uint32_t priority) {
  const std::string what = "tcp echo " + where(ip, port);
  NQ_ASSIGN_OR_RETURN(UniqueFd fd, connect_tcp(ip, port, Clock::now() + timeout, priority));
  std::vector<nanoseconds> rtts;
  std::array<uint8_t, 64> out{}, in{};
  for (int i = 0; i < count; ++i) {
    std::memcpy(out.data(), &i, sizeof(i));
    const auto t0 = Clock::now();
    NQ_TRY(send_all(fd.get(), out.data(), out.size(), t0 + timeout, what));
    NQ_TRY(recv_exact(fd.get(), in.data(), in.size(), t0 + timeout, what));
    rtts.push_back(std::chrono::duration_cast<nanoseconds>(Clock::now() - t0));
    if (in != out) return Error::status(Code::kDataLoss, what + ": echo payload differs");
  }
  return rtts;
}

Result<Throughput> tcp_download(const std::string& ip, uint16_t port, nanoseconds duration,
                                uint32_t priority) {
  const std::string what = "tcp download " + where(ip, port);
  const auto start = Clock::now();
  NQ_ASSIGN_OR_RETURN(UniqueFd fd,
                      connect_tcp(ip, port, start + std::chrono::seconds(5), priority));
  std::array<char, 65536> buf{};
  Throughput t;
  Clock::time_point first{};
  const auto end = Clock::now() + duration;
  while (Clock::now() < end) {
    pollfd p{fd.get(), POLLIN, 0};
    if (poll_until(p, end) <= 0) continue;
    ssize_t n = ::recv(fd.get(), buf.data(), buf.size(), 0);
    if (n == 0) return Error::status(Code::kAborted, what + ": closed by peer");
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      return Error::from_errno(errno, what + ": recv");
    }
    if (t.bytes == 0) first = Clock::now();
    t.bytes += static_cast<uint64_t>(n);
  }
  t.elapsed = std::chrono::duration_cast<nanoseconds>(Clock::now() - (t.bytes ? first : start));
  return t;
}

Result<Throughput> tcp_upload(const std::string& ip, uint16_t port, nanoseconds duration,
                              uint32_t priority) {
  const std::string what = "tcp upload " + where(ip, port);
  NQ_ASSIGN_OR_RETURN(UniqueFd fd,
                      connect_tcp(ip, port, Clock::now() + std::chrono::seconds(5), priority));
  // A small send buffer keeps what is still queued at the end (and drains after
  // the window) small relative to the window, at any shaped rate.
  const int sndbuf = 32 * 1024;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
  std::array<char, 16384> buf{};
  buf.fill('u');
  const auto end = Clock::now() + duration;
  while (Clock::now() < end) {
    pollfd p{fd.get(), POLLOUT, 0};
    if (poll_until(p, end) <= 0) continue;
    ssize_t n = ::send(fd.get(), buf.data(), buf.size(), MSG_NOSIGNAL);
    if (n < 0 && errno != EAGAIN && errno != EINTR)
      return Error::from_errno(errno, what + ": send");
  }
  if (::shutdown(fd.get(), SHUT_WR) < 0) return Error::from_errno(errno, what + ": shutdown");
  uint64_t report[2] = {0, 0};
  NQ_TRY(recv_exact(fd.get(), report, sizeof(report),
                    Clock::now() + duration + std::chrono::seconds(30), what + ": sink report"));
  return Throughput{report[0], nanoseconds(report[1])};
}

Result<UdpProbeResult> udp_echo_probe(const std::string& ip, uint16_t port, int count,
                                      nanoseconds interval, nanoseconds linger, uint32_t priority) {
  const std::string what = "udp probe " + where(ip, port);
  NQ_ASSIGN_OR_RETURN(SockAddr addr, make_addr(ip, port));
  UniqueFd fd(::socket(addr.family(), SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return Error::from_errno(errno, "socket");
  NQ_TRY(set_priority(fd.get(), priority));
  if (::connect(fd.get(), addr.get(), addr.len) < 0)
    return Error::from_errno(errno, what + ": connect");

  // Datagram: u32 seq, u32 checksum of the rest, u64 send time, 48 bytes filler.
  struct Datagram {
    uint32_t seq;
    uint32_t sum;
    int64_t sent_ns;
    std::array<uint8_t, 48> fill;
  };
  UdpProbeResult r;
  std::set<uint32_t> seen;
  const auto start = Clock::now();
  auto checksum = [](const Datagram& d) {
    return fnv1a(reinterpret_cast<const uint8_t*>(&d.sent_ns), sizeof(d) - 2 * sizeof(uint32_t)) ^
           d.seq;
  };
  auto drain = [&](Clock::time_point until) -> Status {
    for (;;) {
      pollfd p{fd.get(), POLLIN, 0};
      int rc = poll_until(p, until);
      if (rc == 0) return ok();
      if (rc < 0) {
        if (errno == EINTR) continue;
        return Error::from_errno(errno, what + ": poll");
      }
      Datagram d{};
      ssize_t n = ::recv(fd.get(), &d, sizeof(d), 0);
      if (n < 0) {
        // ICMP errors (port unreachable) surface here; the probe just counts loss.
        if (errno == EAGAIN || errno == ECONNREFUSED || errno == EINTR) continue;
        return Error::from_errno(errno, what + ": recv");
      }
      if (n != sizeof(d) || checksum(d) != d.sum) {
        ++r.corrupted;
        continue;
      }
      if (!seen.insert(d.seq).second) {
        ++r.duplicates;
        continue;
      }
      ++r.received;
      r.rtts.push_back(Clock::now().time_since_epoch() - nanoseconds(d.sent_ns));
      r.sent_at.push_back(nanoseconds(d.sent_ns));
    }
  };
  for (int i = 0; i < count; ++i) {
    Datagram d{};
    d.seq = static_cast<uint32_t>(i);
    d.sent_ns = Clock::now().time_since_epoch().count();
    for (size_t k = 0; k < d.fill.size(); ++k) d.fill[k] = static_cast<uint8_t>(i + k);
    d.sum = checksum(d);
    if (::send(fd.get(), &d, sizeof(d), 0) == sizeof(d)) ++r.sent;
    NQ_TRY(drain(start + interval * (i + 1)));
  }
  NQ_TRY(drain(Clock::now() + linger));
  return r;
}

Result<int> http_get(const std::string& ip, uint16_t port, const std::string& path,
                     nanoseconds timeout) {
  const std::string what = "http get " + where(ip, port) + path;
  const auto deadline = Clock::now() + timeout;
  NQ_ASSIGN_OR_RETURN(UniqueFd fd, connect_tcp(ip, port, deadline));
  const std::string req = "GET " + path + " HTTP/1.0\r\nHost: " + ip + "\r\n\r\n";
  NQ_TRY(send_all(fd.get(), req.data(), req.size(), deadline, what));
  std::string resp;
  std::array<char, 4096> buf{};
  while (resp.find("\r\n") == std::string::npos) {
    NQ_TRY(wait_for(fd.get(), POLLIN, deadline, what));
    ssize_t n = ::recv(fd.get(), buf.data(), buf.size(), 0);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      return Error::from_errno(errno, what + ": recv");
    }
    resp.append(buf.data(), static_cast<size_t>(n));
  }
  // "HTTP/1.0 200 OK"
  const size_t sp = resp.find(' ');
  if (sp == std::string::npos || resp.size() < sp + 4)
    return Error::status(Code::kDataLoss, what + ": malformed response");
  return std::atoi(resp.substr(sp + 1, 3).c_str());
}

Summary summarize(std::vector<double> samples) {
  Summary s;
  s.n = samples.size();
  if (samples.empty()) return s;
  std::sort(samples.begin(), samples.end());
  s.min = samples.front();
  s.max = samples.back();
  s.mean = std::accumulate(samples.begin(), samples.end(), 0.0) / static_cast<double>(s.n);
  double ss = 0;
  for (double v : samples) ss += (v - s.mean) * (v - s.mean);
  s.stddev = s.n > 1 ? std::sqrt(ss / static_cast<double>(s.n - 1)) : 0.0;
  auto rank = [&](double q) {
    size_t idx = static_cast<size_t>(std::ceil(q * static_cast<double>(s.n))) - 1;
    return samples[std::min(idx, s.n - 1)];
  };
  s.p50 = rank(0.50);
  s.p99 = rank(0.99);
  return s;
}

std::vector<double> to_millis(const std::vector<nanoseconds>& v) {
  std::vector<double> out;
  out.reserve(v.size());
  for (auto d : v) out.push_back(std::chrono::duration<double, std::milli>(d).count());
  return out;
}

}  // namespace nq::traffic
