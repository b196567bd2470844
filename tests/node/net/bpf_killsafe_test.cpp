// The fail-safe property: a partition attached through TCX links dies with
// the process that holds them. (clsact filters do not, hence the journal and
// remove_legacy(); the second test shows that path end to end.)
#include <fcntl.h>
#include <gtest/gtest.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>

#include <thread>

#include "tests/node/net/bpf_env.h"

namespace nq::testing {
namespace {

using net::NetfaultLoadOptions;
using net::NetfaultProgram;

constexpr const char* kB = NetnsPair::kIpB;

// Kills and reaps the child whatever happens to the test.
class Child {
 public:
  explicit Child(pid_t pid) : pid_(pid) {}
  ~Child() { kill(); }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  void kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
  }

 private:
  pid_t pid_;
};

struct Report {
  int ok = 0;
  NetfaultProgram::LegacyAttachment legacy[2];
};

// Child side: runs on the child's only thread, which joins a's namespace
// itself; never returns into the test framework.
[[noreturn]] void agent_child(int netns_fd, int report_fd, NetfaultLoadOptions::Attach attach) {
  Report report;
  const auto run = [&]() -> Status {
    NQ_TRY(enter_netns(netns_fd));
    NetfaultLoadOptions options;
    options.attach = attach;
    NQ_ASSIGN_OR_RETURN(NetfaultProgram prog, NetfaultProgram::load(options));
    const int ifindex = static_cast<int>(::if_nametoindex("eth0"));
    if (ifindex == 0) return Error::from_errno(errno, "if_nametoindex eth0");
    NQ_TRY(prog.attach(ifindex));
    net::RuleSlots slots;
    slots[0] = partition(net::kBoth, {"10.77.0.2/32"});
    NQ_ASSIGN_OR_RETURN(net::CompiledRules compiled, net::compile_rules(slots, 0));
    NQ_TRY(prog.apply(compiled));
    const auto legacy = prog.legacy();
    for (size_t i = 0; i < legacy.size() && i < 2; ++i) report.legacy[i] = legacy[i];
    report.ok = 1;
    (void)!::write(report_fd, &report, sizeof(report));
    for (;;) ::pause();  // holds `prog` until killed
  };
  Status st = run();
  (void)!::write(report_fd, &report, sizeof(report));
  ::_exit(st.ok() ? 0 : 1);
}

Result<Report> wait_report(int fd) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, 20000) != 1) return Error::unavailable("child sent no report in 20 s");
  Report r;
  if (::read(fd, &r, sizeof(r)) != sizeof(r)) return Error::from_errno(errno, "read report");
  return r;
}

// Connects within `total`, retrying: link teardown after a kill is not
// instantaneous.
bool connects_within(const Netns& from, std::chrono::milliseconds total) {
  const auto deadline = std::chrono::steady_clock::now() + total;
  do {
    if (connect_from(from, kB, 7, kBlockedTimeout).ok()) return true;
  } while (std::chrono::steady_clock::now() < deadline);
  return false;
}

class NetfaultKillSafety : public ::testing::Test {
 protected:
  void SetUp() override {
    NQ_REQUIRE_ROOT();
    auto pair = NetnsPair::create();
    ASSERT_TRUE(pair.ok()) << pair.error().message();
    pair_ = std::move(*pair);
    auto server = ServerThread::start(pair_->b());
    ASSERT_TRUE(server.ok()) << server.error().message();
    server_ = std::move(*server);
  }

  // Forks the "agent"; returns its report once the partition is in place.
  Result<Report> start_child(NetfaultLoadOptions::Attach attach, std::unique_ptr<Child>& child) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return Error::from_errno(errno, "pipe2");
    UniqueFd rd(fds[0]), wr(fds[1]);
    const pid_t pid = ::fork();
    if (pid < 0) return Error::from_errno(errno, "fork");
    if (pid == 0) agent_child(pair_->a().fd(), wr.get(), attach);
    child = std::make_unique<Child>(pid);
    wr.reset();
    NQ_ASSIGN_OR_RETURN(Report r, wait_report(rd.get()));
    if (!r.ok) return Error::internal("the child failed to load, attach or apply");
    return r;
  }

  std::unique_ptr<NetnsPair> pair_;
  std::unique_ptr<ServerThread> server_;
};

TEST_F(NetfaultKillSafety, TcxPartitionDiesWithTheProcess) {
  if (auto why = tcx_missing()) GTEST_SKIP() << *why;
  std::unique_ptr<Child> child;
  auto report = start_child(NetfaultLoadOptions::Attach::kTcx, child);
  ASSERT_TRUE(report.ok()) << report.error().message();
  auto blocked = connect_from(pair_->a(), kB, 7, kBlockedTimeout);
  ASSERT_FALSE(blocked.ok()) << "the child's partition is not in effect";

  child->kill();  // SIGKILL: no destructor, no detach
  EXPECT_TRUE(connects_within(pair_->a(), std::chrono::seconds(5)))
      << "the partition outlived the killed process";
}

TEST_F(NetfaultKillSafety, LegacyPartitionSurvivesUntilReconciled) {
  std::unique_ptr<Child> child;
  auto report = start_child(NetfaultLoadOptions::Attach::kLegacyTc, child);
  ASSERT_TRUE(report.ok()) << report.error().message();
  child->kill();
  // Still partitioned: the filters hold the program.
  EXPECT_FALSE(connect_from(pair_->a(), kB, 7, kBlockedTimeout).ok());
  const std::vector<NetfaultProgram::LegacyAttachment> journal(report->legacy, report->legacy + 2);
  Status st = run_in_netns(pair_->a(), [&] { return NetfaultProgram::remove_legacy(journal); });
  ASSERT_TRUE(st.ok()) << st.error().message();
  EXPECT_TRUE(connects_within(pair_->a(), std::chrono::seconds(2)));
}

}  // namespace
}  // namespace nq::testing
