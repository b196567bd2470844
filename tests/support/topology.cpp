#include "tests/support/topology.h"

#include <atomic>

#include "agent/net/links.h"

namespace nq::testing {
namespace {

std::string unique_name(const char* side) {
  static std::atomic<int> seq{0};
  return "/run/netns/nqt-" + std::to_string(::getpid()) + "-" + std::to_string(seq.fetch_add(1)) +
         "-" + side;
}

Status configure_side(const Netns& ns, const char* address) {
  return run_in_netns(ns, [&]() -> Status {
    NQ_ASSIGN_OR_RETURN(net::NlSocket sock, net::NlSocket::open_route());
    NQ_TRY(net::set_link_up(sock, "lo"));
    NQ_ASSIGN_OR_RETURN(Cidr addr, parse_interface_address(address));
    NQ_TRY(net::add_address(sock, "eth0", addr));
    return net::set_link_up(sock, "eth0");
  });
}

}  // namespace

Result<std::unique_ptr<NetnsPair>> NetnsPair::create() {
  std::unique_ptr<NetnsPair> pair(new NetnsPair());
  // Assigned before creation so the destructor removes whatever exists.
  pair->path_a_ = unique_name("a");
  pair->path_b_ = unique_name("b");
  NQ_TRY(create_named_netns(pair->path_a_));
  NQ_TRY(create_named_netns(pair->path_b_));
  NQ_ASSIGN_OR_RETURN(Netns a, Netns::open(pair->path_a_));
  NQ_ASSIGN_OR_RETURN(Netns b, Netns::open(pair->path_b_));
  pair->a_ = std::make_unique<Netns>(std::move(a));
  pair->b_ = std::make_unique<Netns>(std::move(b));
  NQ_TRY(run_in_netns(*pair->a_, [&]() -> Status {
    NQ_ASSIGN_OR_RETURN(net::NlSocket sock, net::NlSocket::open_route());
    return net::create_veth(sock, "eth0", "eth0", pair->b_->fd());
  }));
  NQ_TRY(configure_side(*pair->a_, "10.77.0.1/24"));
  NQ_TRY(configure_side(*pair->b_, "10.77.0.2/24"));
  for (const Netns* ns : {pair->a_.get(), pair->b_.get()}) {
    NQ_TRY(run_in_netns(*ns, []() -> Status {
      NQ_ASSIGN_OR_RETURN(net::NlSocket sock, net::NlSocket::open_route());
      return net::wait_link_running(sock, "eth0");
    }));
  }
  return pair;
}

NetnsPair::~NetnsPair() {
  // Closing our handles and unpinning destroys the namespaces and the veth in them.
  a_.reset();
  b_.reset();
  (void)remove_named_netns(path_a_);
  (void)remove_named_netns(path_b_);
}

Result<std::unique_ptr<ServerThread>> ServerThread::start(const Netns& netns,
                                                          const traffic::Ports& ports) {
  std::unique_ptr<ServerThread> st(new ServerThread());
  // Sockets bound inside the namespace stay there; the loop can run anywhere.
  NQ_ASSIGN_OR_RETURN(st->server_, run_in_netns(netns, [&] {
                        return traffic::Server::create("0.0.0.0", ports, "test");
                      }));
  st->thread_ = std::thread([s = st->server_.get()] { (void)s->run(); });
  return st;
}

ServerThread::~ServerThread() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace nq::testing
