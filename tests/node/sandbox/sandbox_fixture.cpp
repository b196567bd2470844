#include "tests/node/sandbox/sandbox_fixture.h"

#include <fstream>
#include <sstream>

#include "agent/net/links.h"

namespace nq::sandbox::testing {

void SandboxTest::SetUp() {
  if (std::string why = nq::testing::SandboxEnv::unavailable_reason(); !why.empty())
    GTEST_SKIP() << why;
  cgroups_ = env_.cgroups();
}

void SandboxTest::TearDown() {
  if (!cgroups_) return;  // skipped
  auto down = env_.teardown();
  EXPECT_TRUE(down.ok()) << down.error().message();
}

PodRecord SandboxTest::record(const std::string& name) const {
  auto r = env_.record(name);
  EXPECT_TRUE(r.ok()) << r.error().message();
  return r.ok() ? *r : PodRecord{};
}

bool SandboxTest::link_exists(const std::string& name) {
  auto sock = net::NlSocket::open_route();
  EXPECT_TRUE(sock.ok());
  if (!sock.ok()) return false;
  auto index = net::link_index(*sock, name);
  if (!index.ok()) {
    EXPECT_EQ(index.error().status_code(), Code::kNotFound);
  }
  return index.ok();
}

std::string SandboxTest::read_file(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace nq::sandbox::testing
