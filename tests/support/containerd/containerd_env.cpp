#include "tests/support/containerd/containerd_env.h"

#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "agent/net/links.h"
#include "agent/net/netlink.h"
#include "agent/runtime/cri/pod_mapping.h"
#include "agent/server/channel.h"
#include "agent/server/status.h"
#include "common/netns.h"
#include "tests/support/containerd/oci_image.h"

namespace nq::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// containerd finds runc and the shims on PATH; ctest's may lack the sbin dirs.
constexpr const char* kPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

Result<pid_t> spawn(const std::vector<std::string>& argv, const fs::path& log) {
  std::vector<std::string> args = argv;
  std::vector<char*> cargv;
  for (auto& a : args) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  std::string path_env = kPath;
  char* envp[] = {path_env.data(), nullptr};
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  // Its own process group: a Ctrl-C on the test does not hit containerd
  // before the destructor has removed the pods through it.
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETPGROUP);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, args[0].c_str(), &actions, &attr, cargv.data(), envp);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) return Error::from_errno(rc, "spawn " + args[0]);
  return pid;
}

// Waits for `pid` up to `timeout`; its wait status, or DeadlineExceeded.
Result<int> wait_for(pid_t pid, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int status = 0;
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) return status;
    if (r < 0) return Error::from_errno(errno, "waitpid " + std::to_string(pid));
    if (std::chrono::steady_clock::now() > deadline)
      return Error::status(Code::kDeadlineExceeded, "pid " + std::to_string(pid) + " still runs");
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

std::string tail_of(const fs::path& p, size_t bytes) {
  std::ifstream in(p);
  std::ostringstream ss;
  ss << in.rdbuf();
  std::string all = ss.str();
  return all.size() <= bytes ? all : all.substr(all.size() - bytes);
}

}  // namespace

ContainerdEnv::ContainerdEnv(ContainerdOptions opts) : opts_(std::move(opts)) {
  const pid_t self = ::getpid();
  suffix_ = std::to_string(self);
  // Short: the socket path must fit sockaddr_un, the shims' too.
  dir_ = fs::path("/tmp") / ("nqcri-" + suffix_);
  socket_ = dir_ / "c.sock";
  bridge_ = "nqcri" + std::to_string(self % 1000000);
  network_ = "nqcri-" + suffix_;
  // 10.234.0.0/16 is used only by these tests on this machine; one /24 per
  // run so concurrent runs do not route into each other's bridge.
  const int third = 1 + self % 250;
  subnet_ = "10.234." + std::to_string(third) + ".0/24";
  gateway_ = "10.234." + std::to_string(third) + ".1";
  cgroup_parent_ = "/nqcri-" + suffix_;
}

Result<std::unique_ptr<ContainerdEnv>> ContainerdEnv::start(ContainerdOptions opts) {
  for (const fs::path& p :
       {opts.containerd, opts.ctr, opts.runc, opts.cni_bin_dir / "bridge",
        opts.cni_bin_dir / "host-local", opts.cni_bin_dir / "loopback", opts.busybox, opts.pause}) {
    if (!fs::exists(p))
      return Error::failed_precondition(
          p.string() +
          " is missing (scripts/install-deps.sh test installs containerd, runc, "
          "containernetworking-plugins and busybox-static)");
  }
  std::unique_ptr<ContainerdEnv> env(new ContainerdEnv(std::move(opts)));
  if (Status st = env->setup(); !st.ok()) {
    return std::move(st).error().wrapped("containerd in " + env->dir_.string() + " (log tail:\n" +
                                         env->log_tail() + ")");
  }
  return env;
}

Status ContainerdEnv::setup() {
  std::error_code ec;
  fs::remove_all(dir_, ec);
  fs::create_directories(dir_ / "cni", ec);
  if (ec) return Error::from_errno(ec.value(), "create " + dir_.string());
  NQ_TRY(write_config());
  NQ_TRY(start_daemon());
  return build_and_import_images();
}

Status ContainerdEnv::write_config() {
  const std::string d = dir_.string();
  std::ofstream cfg(dir_ / "config.toml");
  // restrict_oom_score_adj: without CAP_SYS_RESOURCE (absent here) runc
  // cannot lower oom_score_adj, and the sandbox spec asks for -998: every
  // sandbox would fail. sandbox_image: our pause, no registry needed.
  cfg << "version = 2\n"
      << "root = \"" << d << "/root\"\n"
      << "state = \"" << d << "/state\"\n"
      << "disabled_plugins = [\"io.containerd.snapshotter.v1.devmapper\", "
         "\"io.containerd.snapshotter.v1.aufs\", \"io.containerd.snapshotter.v1.btrfs\", "
         "\"io.containerd.snapshotter.v1.zfs\"]\n"
      << "[grpc]\n  address = \"" << socket_.string() << "\"\n"
      << "[ttrpc]\n  address = \"" << socket_.string() << ".ttrpc\"\n"
      << "[plugins.\"io.containerd.grpc.v1.cri\"]\n"
      << "  sandbox_image = \"" << kPauseImage << "\"\n"
      << "  restrict_oom_score_adj = true\n"
      << "  stream_server_address = \"127.0.0.1\"\n"
      << "  stream_server_port = \"0\"\n"
      << "  [plugins.\"io.containerd.grpc.v1.cri\".containerd]\n"
      << "    default_runtime_name = \"runc\"\n"
      << "    [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc]\n"
      << "      runtime_type = \"io.containerd.runc.v2\"\n"
      << "      [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options]\n"
      << "        SystemdCgroup = false\n"
      << "        BinaryName = \"" << opts_.runc.string() << "\"\n"
      << "  [plugins.\"io.containerd.grpc.v1.cri\".cni]\n"
      << "    bin_dir = \"" << opts_.cni_bin_dir.string() << "\"\n"
      << "    conf_dir = \"" << d << "/cni\"\n";
  cfg.close();
  if (!cfg) return Error::from_errno(errno, "write config.toml");

  const json conflist = {{"cniVersion", "0.4.0"},
                         {"name", network_},
                         {"plugins",
                          {{{"type", "bridge"},
                            {"bridge", bridge_},
                            {"isGateway", true},
                            {"ipMasq", false},
                            {"hairpinMode", true},
                            {"ipam",
                             {{"type", "host-local"},
                              {"ranges", {{{{"subnet", subnet_}, {"gateway", gateway_}}}}},
                              {"dataDir", d + "/ipam"}}}}}}};
  std::ofstream cni(dir_ / "cni" / "10-nqcri.conflist");
  cni << conflist.dump(2) << "\n";
  cni.close();
  if (!cni) return Error::from_errno(errno, "write the CNI config");
  return ok();
}

std::unique_ptr<grpc::ClientContext> ContainerdEnv::ctx(std::chrono::seconds timeout) {
  auto c = std::make_unique<grpc::ClientContext>();
  c->set_deadline(std::chrono::system_clock::now() + timeout);
  return c;
}

Status ContainerdEnv::start_daemon() {
  if (pid_ > 0) return Error::failed_precondition("containerd already runs");
  NQ_ASSIGN_OR_RETURN(
      pid_, spawn({opts_.containerd.string(), "--config", (dir_ / "config.toml").string()},
                  dir_ / "containerd.log"));
  NQ_ASSIGN_OR_RETURN(channel_, make_channel({"unix://" + socket_.string(), "", "", "", ""}));
  stub_ = criv1::RuntimeService::NewStub(channel_);
  const auto deadline = std::chrono::steady_clock::now() + opts_.start_timeout;
  for (;;) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return Error::unavailable("containerd exited during start-up (status " +
                                std::to_string(status) + ")");
    }
    // The CRI service answering Version is what the tests need, not just
    // the socket: the CRI plugin initialises after the socket is bound.
    if (fs::exists(socket_)) {
      auto c = ctx(std::chrono::seconds(1));
      criv1::VersionResponse resp;
      criv1::VersionRequest req;
      req.set_version("v1");
      if (stub_->Version(c.get(), req, &resp).ok()) return ok();
    }
    if (std::chrono::steady_clock::now() > deadline)
      return Error::status(Code::kDeadlineExceeded, "containerd's CRI did not answer in time");
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

Status ContainerdEnv::stop_daemon() {
  if (pid_ <= 0) return ok();
  stub_.reset();
  channel_.reset();
  if (::kill(pid_, SIGTERM) < 0) return Error::from_errno(errno, "kill containerd");
  auto status = wait_for(pid_, std::chrono::seconds(15));
  if (!status.ok()) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  pid_ = -1;
  return ok();
}

Status ContainerdEnv::run_tool(const std::vector<std::string>& argv, const std::string& what) {
  const fs::path log = dir_ / "tools.log";
  NQ_ASSIGN_OR_RETURN(pid_t pid, spawn(argv, log));
  auto status = wait_for(pid, std::chrono::seconds(60));
  if (!status.ok()) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    return std::move(status).error().wrapped(what);
  }
  if (!WIFEXITED(*status) || WEXITSTATUS(*status) != 0)
    return Error::internal(what + " failed (status " + std::to_string(*status) + "):\n" +
                           tail_of(log, 2000));
  return ok();
}

Status ContainerdEnv::build_and_import_images() {
  ImageSpec pause;
  pause.name = kPauseImage;
  pause.entries = {{"pause", opts_.pause, "", 0755}};
  pause.entrypoint = {"/pause"};

  ImageSpec busybox;
  busybox.name = kBusyboxImage;
  busybox.entries = {{"bin", {}, "", 0755},
                     {"dev", {}, "", 0755},
                     {"etc", {}, "", 0755},
                     {"proc", {}, "", 0555},
                     {"sys", {}, "", 0555},
                     {"tmp", {}, "", 01777},
                     {"bin/busybox", opts_.busybox, "", 0755},
                     {"bin/sh", {}, "busybox", 0777}};
  busybox.entrypoint = {"/bin/sh"};

  for (const ImageSpec* image : {&pause, &busybox}) {
    const fs::path tar = dir_ / (image == &pause ? "pause.tar" : "busybox.tar");
    NQ_TRY(write_oci_archive(*image, tar));
    NQ_TRY(run_tool({opts_.ctr.string(), "--address", socket_.string(), "--namespace", "k8s.io",
                     "images", "import", tar.string()},
                    "ctr images import " + image->name));
  }
  return ok();
}

Result<PodHandle> ContainerdEnv::run_pod(const PodSpec& spec) {
  criv1::PodSandboxConfig config;
  auto* md = config.mutable_metadata();
  md->set_name(spec.name);
  md->set_namespace_(spec.namespace_name);
  md->set_uid(spec.namespace_name + "-" + spec.name + "-" + suffix_);
  if (!spec.host_network) config.set_hostname(spec.name);
  config.set_log_directory((dir_ / "logs" / (spec.namespace_name + "_" + spec.name)).string());
  config.mutable_labels()->insert(spec.labels.begin(), spec.labels.end());
  auto* linux = config.mutable_linux();
  linux->set_cgroup_parent(cgroup_parent_);
  auto* nsopts = linux->mutable_security_context()->mutable_namespace_options();
  nsopts->set_network(spec.host_network ? criv1::NODE : criv1::POD);
  nsopts->set_pid(criv1::CONTAINER);

  criv1::RunPodSandboxRequest rreq;
  *rreq.mutable_config() = config;
  criv1::RunPodSandboxResponse rresp;
  if (grpc::Status st = stub_->RunPodSandbox(ctx().get(), rreq, &rresp); !st.ok())
    return from_grpc_status(st, "RunPodSandbox " + spec.namespace_name + "/" + spec.name);
  PodHandle handle;
  handle.sandbox_id = rresp.pod_sandbox_id();
  PodConfigs& recorded = configs_[handle.sandbox_id];
  recorded.sandbox = config;

  // Remember the netns: if containerd dies with the pod, the teardown
  // still finds it.
  {
    criv1::PodSandboxStatusRequest sreq;
    sreq.set_pod_sandbox_id(handle.sandbox_id);
    sreq.set_verbose(true);
    criv1::PodSandboxStatusResponse sresp;
    if (stub_->PodSandboxStatus(ctx().get(), sreq, &sresp).ok()) {
      auto info = cri::parse_verbose_info(cri::info_document(sresp.info()));
      if (info.ok() && !info->netns_path.empty()) netns_paths_.push_back(info->netns_path);
    }
  }

  for (const ContainerSpec& c : spec.containers) {
    criv1::CreateContainerRequest creq;
    creq.set_pod_sandbox_id(handle.sandbox_id);
    *creq.mutable_sandbox_config() = config;
    auto* cc = creq.mutable_config();
    cc->mutable_metadata()->set_name(c.name);
    cc->mutable_image()->set_image(kBusyboxImage);
    cc->add_command("/bin/busybox");
    for (const auto& a : c.args) cc->add_args(a);
    cc->set_log_path(c.name + ".log");
    auto* res = cc->mutable_linux()->mutable_resources();
    if (c.cpu_quota_us > 0) {
      res->set_cpu_period(100000);
      res->set_cpu_quota(c.cpu_quota_us);
    }
    if (c.memory_limit_bytes > 0) res->set_memory_limit_in_bytes(c.memory_limit_bytes);
    auto* cns = cc->mutable_linux()->mutable_security_context()->mutable_namespace_options();
    cns->set_network(spec.host_network ? criv1::NODE : criv1::POD);
    cns->set_pid(criv1::CONTAINER);
    criv1::CreateContainerResponse cresp;
    if (grpc::Status st = stub_->CreateContainer(ctx().get(), creq, &cresp); !st.ok())
      return from_grpc_status(st, "CreateContainer " + spec.name + "/" + c.name);
    criv1::StartContainerRequest sreq;
    sreq.set_container_id(cresp.container_id());
    criv1::StartContainerResponse sresp;
    if (grpc::Status st = stub_->StartContainer(ctx().get(), sreq, &sresp); !st.ok())
      return from_grpc_status(st, "StartContainer " + spec.name + "/" + c.name);
    handle.container_ids.push_back(cresp.container_id());
    recorded.containers[cresp.container_id()] = *cc;
  }
  return handle;
}

Result<std::string> ContainerdEnv::restart_container(const std::string& sandbox_id,
                                                     const std::string& container_id) {
  if (!stub_) return Error::failed_precondition("containerd is not running");
  auto pod = configs_.find(sandbox_id);
  if (pod == configs_.end()) return Error::not_found("sandbox " + sandbox_id + " was not run here");
  auto old = pod->second.containers.find(container_id);
  if (old == pod->second.containers.end())
    return Error::not_found("container " + container_id + " is not of sandbox " + sandbox_id);
  criv1::ContainerConfig config = old->second;

  criv1::StopContainerRequest stop;
  stop.set_container_id(container_id);
  stop.set_timeout(0);  // SIGKILL: busybox as pid 1 ignores SIGTERM anyway
  criv1::StopContainerResponse stopped;
  if (grpc::Status st = stub_->StopContainer(ctx().get(), stop, &stopped); !st.ok())
    return from_grpc_status(st, "StopContainer " + container_id);
  criv1::RemoveContainerRequest rm;
  rm.set_container_id(container_id);
  criv1::RemoveContainerResponse removed;
  if (grpc::Status st = stub_->RemoveContainer(ctx().get(), rm, &removed); !st.ok())
    return from_grpc_status(st, "RemoveContainer " + container_id);
  pod->second.containers.erase(old);

  config.mutable_metadata()->set_attempt(config.metadata().attempt() + 1);
  criv1::CreateContainerRequest create;
  create.set_pod_sandbox_id(sandbox_id);
  *create.mutable_sandbox_config() = pod->second.sandbox;
  *create.mutable_config() = config;
  criv1::CreateContainerResponse created;
  if (grpc::Status st = stub_->CreateContainer(ctx().get(), create, &created); !st.ok())
    return from_grpc_status(st, "CreateContainer " + config.metadata().name() + " (attempt " +
                                    std::to_string(config.metadata().attempt()) + ")");
  criv1::StartContainerRequest start;
  start.set_container_id(created.container_id());
  criv1::StartContainerResponse started;
  if (grpc::Status st = stub_->StartContainer(ctx().get(), start, &started); !st.ok())
    return from_grpc_status(st, "StartContainer " + created.container_id());
  pod->second.containers[created.container_id()] = config;
  return created.container_id();
}

Status ContainerdEnv::remove_pod(const std::string& sandbox_id) {
  if (!stub_) return Error::failed_precondition("containerd is not running");
  criv1::StopPodSandboxRequest sreq;
  sreq.set_pod_sandbox_id(sandbox_id);
  criv1::StopPodSandboxResponse sresp;
  // containerd 1.6 can fail the stop of a container whose task has just
  // exited with "ttrpc: closed" (its shim connection went with the task);
  // the kubelet's sync loop retries, and so does this, a few times.
  for (int attempt = 1;; ++attempt) {
    grpc::Status st = stub_->StopPodSandbox(ctx().get(), sreq, &sresp);
    if (st.ok()) break;
    if (attempt == 5 || st.error_message().find("ttrpc: closed") == std::string::npos)
      return from_grpc_status(st, "StopPodSandbox " + sandbox_id);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  criv1::RemovePodSandboxRequest rreq;
  rreq.set_pod_sandbox_id(sandbox_id);
  criv1::RemovePodSandboxResponse rresp;
  if (grpc::Status st = stub_->RemovePodSandbox(ctx().get(), rreq, &rresp); !st.ok())
    return from_grpc_status(st, "RemovePodSandbox " + sandbox_id);
  configs_.erase(sandbox_id);
  return ok();
}

Result<std::vector<criv1::PodSandbox>> ContainerdEnv::list_sandboxes() {
  if (!stub_) return Error::failed_precondition("containerd is not running");
  criv1::ListPodSandboxRequest req;
  criv1::ListPodSandboxResponse resp;
  if (grpc::Status st = stub_->ListPodSandbox(ctx().get(), req, &resp); !st.ok())
    return from_grpc_status(st, "ListPodSandbox");
  return std::vector<criv1::PodSandbox>(resp.items().begin(), resp.items().end());
}

Result<std::string> ContainerdEnv::pod_ip(const std::string& sandbox_id) {
  criv1::PodSandboxStatusRequest req;
  req.set_pod_sandbox_id(sandbox_id);
  criv1::PodSandboxStatusResponse resp;
  if (grpc::Status st = stub_->PodSandboxStatus(ctx().get(), req, &resp); !st.ok())
    return from_grpc_status(st, "PodSandboxStatus " + sandbox_id);
  if (resp.status().network().ip().empty())
    return Error::not_found("sandbox " + sandbox_id + " has no IP");
  return resp.status().network().ip();
}

std::string ContainerdEnv::log_tail(size_t bytes) const {
  return tail_of(dir_ / "containerd.log", bytes);
}

ContainerdEnv::~ContainerdEnv() {
  teardown();
}

}  // namespace nq::testing
