#include "agent/runtime/cri/socket.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <fstream>

#include "common/fd.h"

namespace nq::cri {
namespace {

namespace fs = std::filesystem;

// A fake host root: a temp directory in which the test binds Unix sockets
// (a file-system object, nothing kernel-global) and plants decoys.
class FakeRoot : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("nq-cri-socket-" + std::to_string(::getpid()));
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override {
    socks_.clear();
    fs::remove_all(root_);
  }
  void bind_socket(const std::string& host_path) {
    const fs::path p = root_ / fs::path(host_path).relative_path();
    fs::create_directories(p.parent_path());
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    ASSERT_TRUE(fd);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    ASSERT_LT(p.string().size(), sizeof(addr.sun_path));
    p.string().copy(addr.sun_path, p.string().size());
    ASSERT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0) << errno;
    socks_.push_back(std::move(fd));
  }
  void plant_file(const std::string& host_path) {
    const fs::path p = root_ / fs::path(host_path).relative_path();
    fs::create_directories(p.parent_path());
    std::ofstream(p) << "not a socket";
  }
  fs::path root_;
  std::vector<UniqueFd> socks_;
};

TEST_F(FakeRoot, NothingThereIsNotFoundListingThePaths) {
  auto r = detect_socket(root_);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().status_code(), Code::kNotFound);
  EXPECT_NE(r.error().message().find((root_ / "run/containerd/containerd.sock").string()),
            std::string::npos)
      << r.error().message();
  EXPECT_NE(r.error().message().find((root_ / "var/run/crio/crio.sock").string()),
            std::string::npos);
}

TEST_F(FakeRoot, FindsK3s) {
  bind_socket("/run/k3s/containerd/containerd.sock");
  EXPECT_EQ(detect_socket(root_).value(), root_ / "run/k3s/containerd/containerd.sock");
}

TEST_F(FakeRoot, ContainerdBeforeK3s) {
  bind_socket("/run/k3s/containerd/containerd.sock");
  bind_socket("/run/containerd/containerd.sock");
  EXPECT_EQ(detect_socket(root_).value(), root_ / "run/containerd/containerd.sock");
}

TEST_F(FakeRoot, CrioThroughTheVarRunSymlink) {
  // On real hosts /var/run -> /run; a relative link keeps it inside the root.
  fs::create_directories(root_ / "var");
  fs::create_symlink("../run", root_ / "var/run");
  bind_socket("/run/crio/crio.sock");
  EXPECT_EQ(detect_socket(root_).value(), root_ / "var/run/crio/crio.sock");
}

TEST_F(FakeRoot, SkipsFilesThatAreNotSockets) {
  plant_file("/run/containerd/containerd.sock");
  bind_socket("/var/run/crio/crio.sock");
  EXPECT_EQ(detect_socket(root_).value(), root_ / "var/run/crio/crio.sock");
}

TEST_F(FakeRoot, CustomCandidates) {
  bind_socket("/x/a.sock");
  const KnownSocket mine[] = {{"mine", "/x/a.sock"}};
  EXPECT_EQ(detect_socket(root_, mine).value(), root_ / "x/a.sock");
}

}  // namespace
}  // namespace nq::cri
