// The way peer chaos tools inject network faults, for comparison: they exec
// `nsenter --net=/proc/PID/ns/net tc ...` or `... iptables ...` as child
// processes, once per change. This lives in bench/ only: it measures them.
// The agent itself never execs tc or iptables.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace nq::bench {

struct PeerTools {
  std::string nsenter;
  std::string tc;
  std::string iptables;
};

// Looks `name` up in the ':'-separated `path_env` like execvp does (first
// executable regular file); NotFound naming the tool otherwise.
Result<std::string> find_in_path(std::string_view name, std::string_view path_env);
// All three, each resolved to an absolute path; NotFound names the missing
// tool and the Debian package that provides it.
Result<PeerTools> find_peer_tools(std::string_view path_env);

// One fault's apply and revert command lines.
struct PeerCommands {
  std::vector<std::string> apply;
  std::vector<std::string> revert;
};

// nsenter --net=/proc/<pid>/ns/net <command...>
std::vector<std::string> nsenter_argv(const PeerTools& tools, pid_t pid,
                                      std::vector<std::string> command);
// tc qdisc add dev <ifname> root tbf rate <rate> burst 32kbit latency 400ms / tc qdisc del
// dev <ifname> root, in the namespace of `pid`.
PeerCommands tc_bandwidth_commands(const PeerTools& tools, pid_t pid, const std::string& ifname,
                                   const std::string& rate);
// iptables -A OUTPUT -d <ip>/32 -j DROP / iptables -D OUTPUT ..., in the namespace of `pid`.
PeerCommands iptables_partition_commands(const PeerTools& tools, pid_t pid,
                                         const std::string& remote_ip);

// Runs `argv` (argv[0] an absolute path; no shell) to completion and returns
// the time from just before posix_spawn until the child is reaped. A nonzero
// exit or a death by signal is an error (with the command's stderr), never a
// fast sample. The child starts with an empty signal mask.
Result<std::chrono::nanoseconds> run_timed(const std::vector<std::string>& argv);

// "a b c", for messages.
std::string join_argv(const std::vector<std::string>& argv);

}  // namespace nq::bench
