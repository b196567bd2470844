// The agent's gRPC transport with a trivial Agent service: listeners, mTLS,
// TLS 1.3 only, per-RPC authorization, shutdown. It tests the transport, not the agent.
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "agent/server/auth.h"
#include "agent/server/channel.h"
#include "agent/server/server.h"
#include "agent/server/status.h"
#include "agent/server/tls.h"
#include "common/fd.h"
#include "nodequake/v1/agent.grpc.pb.h"

namespace nq {
namespace {

namespace fs = std::filesystem;
namespace v1 = nodequake::v1;
using ::testing::HasSubstr;

constexpr const char* kController = "nodequake-controller";

// Read RPCs need any verified peer, Apply needs a mutating identity. Replies
// carry the identity the server saw.
class FakeAgent final : public v1::Agent::Service {
 public:
  explicit FakeAgent(std::vector<std::string> mutators) : mutators_(std::move(mutators)) {}

  grpc::Status Probe(grpc::ServerContext* ctx, const v1::ProbeRequest*,
                     v1::ProbeResponse* resp) override {
    if (Status st = authorize(*ctx, Access::kRead, mutators_); !st.ok())
      return to_grpc_status(st.error());
    resp->set_node("fake-node");
    resp->set_agent_version(peer_identity(*ctx));
    return grpc::Status::OK;
  }
  grpc::Status List(grpc::ServerContext* ctx, const v1::ListRequest*,
                    v1::ListResponse* resp) override {
    if (Status st = authorize(*ctx, Access::kRead, mutators_); !st.ok())
      return to_grpc_status(st.error());
    resp->mutable_killswitch()->set_actor(peer_identity(*ctx));
    return grpc::Status::OK;
  }
  grpc::Status Apply(grpc::ServerContext* ctx, const v1::ApplyRequest* req,
                     v1::ApplyResponse* resp) override {
    if (Status st = authorize(*ctx, Access::kMutate, mutators_); !st.ok())
      return to_grpc_status(st.error());
    resp->mutable_injection()->set_id(req->id());
    (*resp->mutable_injection()->mutable_details())["peer"] = peer_identity(*ctx);
    resp->set_created(true);
    return grpc::Status::OK;
  }

 private:
  std::vector<std::string> mutators_;
};

std::unique_ptr<grpc::ClientContext> call_ctx(int seconds = 5) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
  return ctx;
}

struct ProbeResult {
  grpc::Status status;
  v1::ProbeResponse response;
};

ProbeResult probe(const std::shared_ptr<grpc::Channel>& channel) {
  ProbeResult r;
  auto stub = v1::Agent::NewStub(channel);
  r.status = stub->Probe(call_ctx().get(), v1::ProbeRequest(), &r.response);
  return r;
}

grpc::Status call_apply(const std::shared_ptr<grpc::Channel>& channel, v1::ApplyResponse* out) {
  auto stub = v1::Agent::NewStub(channel);
  v1::ApplyRequest req;
  req.set_id("inj-1");
  return stub->Apply(call_ctx().get(), req, out);
}

class TransportTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // Process TLS policy, before any gRPC object exists (see tls.h).
    ASSERT_TRUE(pin_grpc_tls13().ok());
    certs_ = new fs::path("/tmp/nq-certs-" + std::to_string(::getpid()));
    const std::string cmd = std::string(NQ_GEN_TEST_CERTS) + " " + certs_->string();
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  }
  static void TearDownTestSuite() {
    std::error_code ec;
    fs::remove_all(*certs_, ec);
    delete certs_;
  }

  void SetUp() override {
    dir_ = fs::path("/tmp") / ("nq-transport-" + std::to_string(::getpid()) + "-" +
                               ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  static std::string cert(const std::string& name) { return (*certs_ / name).string(); }

  ServerOptions tls_options() const {
    ServerOptions o;
    o.tcp_address = "127.0.0.1:0";
    o.tls_cert_file = cert("server.crt");
    o.tls_key_file = cert("server.key");
    o.tls_ca_file = cert("ca.crt");
    o.mutating_identities = {kController};
    return o;
  }

  std::unique_ptr<GrpcServer> start(const ServerOptions& o) {
    Result<std::unique_ptr<GrpcServer>> server = GrpcServer::start(o, {&service_});
    if (!server.ok()) {
      ADD_FAILURE() << server.error().message();
      return nullptr;
    }
    return std::move(server).value();
  }

  static std::shared_ptr<grpc::Channel> client(int port, const std::string& who) {
    ChannelOptions o;
    o.target = "127.0.0.1:" + std::to_string(port);
    o.tls_cert_file = cert(who + ".crt");
    o.tls_key_file = cert(who + ".key");
    o.tls_ca_file = cert("ca.crt");
    o.tls_server_name = "localhost";
    Result<std::shared_ptr<grpc::Channel>> ch = make_channel(o);
    EXPECT_TRUE(ch.ok()) << ch.error().message();
    return ch.ok() ? *ch : nullptr;
  }

  static fs::path* certs_;
  fs::path dir_;
  FakeAgent service_{{kController}};
};

fs::path* TransportTest::certs_ = nullptr;

TEST_F(TransportTest, PlaintextTcpIsRefusedAtStart) {
  ServerOptions o;
  o.tcp_address = "127.0.0.1:0";
  Result<std::unique_ptr<GrpcServer>> s = GrpcServer::start(o, {&service_});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().status_code(), Code::kFailedPrecondition);
  EXPECT_EQ(s.error().message(),
            "tcp listener 127.0.0.1:0 needs tls cert, key and CA; refusing to serve plaintext");

  o = tls_options();
  o.tls_ca_file.clear();  // a server cert alone would be server-only TLS: refused as well
  s = GrpcServer::start(o, {&service_});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().status_code(), Code::kFailedPrecondition);
}

TEST_F(TransportTest, BrokenTlsFilesFailAtStartNamingTheOption) {
  ServerOptions o = tls_options();
  o.tls_ca_file = (dir_ / "missing-ca.crt").string();
  Result<std::unique_ptr<GrpcServer>> s = GrpcServer::start(o, {&service_});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().status_code(), Code::kNotFound);
  EXPECT_THAT(s.error().message(), HasSubstr("tls_ca_file: open " + o.tls_ca_file));

  o = tls_options();
  o.tls_key_file = cert("intruder.key");  // valid key, wrong certificate
  s = GrpcServer::start(o, {&service_});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().status_code(), Code::kInvalidArgument);
  EXPECT_THAT(s.error().message(), HasSubstr("tls_key_file: "));
  EXPECT_THAT(s.error().message(), HasSubstr("does not belong to the certificate"));

  o = tls_options();
  o.tls_cert_file = cert("server.key");  // not a certificate
  s = GrpcServer::start(o, {&service_});
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.error().message(), HasSubstr("tls_cert_file: "));
}

TEST_F(TransportTest, TcpNeedsTheTls13Pin) {
  ::unsetenv(kTls12CipherSuitesEnv);
  Result<std::unique_ptr<GrpcServer>> s = GrpcServer::start(tls_options(), {&service_});
  ChannelOptions c{.target = "127.0.0.1:1",
                   .tls_cert_file = cert("controller.crt"),
                   .tls_key_file = cert("controller.key"),
                   .tls_ca_file = cert("ca.crt")};
  Result<std::shared_ptr<grpc::Channel>> ch = make_channel(c);
  ASSERT_TRUE(pin_grpc_tls13().ok());
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().status_code(), Code::kFailedPrecondition);
  EXPECT_THAT(s.error().message(), HasSubstr("pin_grpc_tls13"));
  ASSERT_FALSE(ch.ok());
  EXPECT_THAT(ch.error().message(), HasSubstr("pin_grpc_tls13"));
}

TEST_F(TransportTest, UnixSocketIsPrivateAndLocalCallersMayMutate) {
  ServerOptions o;
  o.unix_socket_path = (dir_ / "run" / "agent.sock").string();
  std::unique_ptr<GrpcServer> server = start(o);
  ASSERT_TRUE(server);
  EXPECT_EQ(server->tcp_port(), 0);

  struct stat st {};
  ASSERT_EQ(::stat(o.unix_socket_path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  ASSERT_EQ(::stat((dir_ / "run").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);

  Result<std::shared_ptr<grpc::Channel>> ch =
      make_channel({.target = "unix://" + o.unix_socket_path});
  ASSERT_TRUE(ch.ok()) << ch.error().message();
  ProbeResult p = probe(*ch);
  ASSERT_TRUE(p.status.ok()) << p.status.error_message();
  EXPECT_EQ(p.response.agent_version(), "local");
  v1::ApplyResponse applied;
  grpc::Status st_apply = call_apply(*ch, &applied);
  ASSERT_TRUE(st_apply.ok()) << st_apply.error_message();
  EXPECT_EQ(applied.injection().details().at("peer"), "local");

  server->shutdown(std::chrono::milliseconds(100));
  EXPECT_FALSE(fs::exists(o.unix_socket_path));
}

TEST_F(TransportTest, StaleSocketIsReplacedButALiveOneIsNot) {
  ServerOptions o;
  o.unix_socket_path = (dir_ / "agent.sock").string();
  fs::create_directories(dir_);
  {
    // What a crashed agent leaves: a bound socket file nobody listens on.
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strcpy(addr.sun_path, o.unix_socket_path.c_str());
    ASSERT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  }
  ASSERT_TRUE(fs::exists(o.unix_socket_path));
  std::unique_ptr<GrpcServer> server = start(o);
  ASSERT_TRUE(server);

  Result<std::unique_ptr<GrpcServer>> second = GrpcServer::start(o, {&service_});
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().status_code(), Code::kUnavailable);
  EXPECT_THAT(second.error().message(), HasSubstr("another server is listening"));
  // The first server still answers.
  ProbeResult p = probe(*make_channel({.target = "unix://" + o.unix_socket_path}));
  EXPECT_TRUE(p.status.ok()) << p.status.error_message();

  // A regular file at the path is not ours to delete.
  ServerOptions other;
  other.unix_socket_path = (dir_ / "not-a-socket").string();
  std::ofstream(other.unix_socket_path) << "data";
  Result<std::unique_ptr<GrpcServer>> refused = GrpcServer::start(other, {&service_});
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().status_code(), Code::kFailedPrecondition);
  EXPECT_TRUE(fs::exists(other.unix_socket_path));
}

TEST_F(TransportTest, ControllerCertificateMayApply) {
  ServerOptions o = tls_options();
  o.unix_socket_path = (dir_ / "agent.sock").string();  // both listeners at once
  std::unique_ptr<GrpcServer> server = start(o);
  ASSERT_TRUE(server);
  ASSERT_GT(server->tcp_port(), 0);

  auto ch = client(server->tcp_port(), "controller");
  ProbeResult p = probe(ch);
  ASSERT_TRUE(p.status.ok()) << p.status.error_message();
  EXPECT_EQ(p.response.agent_version(), kController);
  v1::ApplyResponse applied;
  grpc::Status st = call_apply(ch, &applied);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(applied.injection().id(), "inj-1");
  EXPECT_EQ(applied.injection().details().at("peer"), kController);
}

TEST_F(TransportTest, OtherIdentitiesMayReadButNotMutate) {
  std::unique_ptr<GrpcServer> server = start(tls_options());
  ASSERT_TRUE(server);
  auto ch = client(server->tcp_port(), "intruder");

  ProbeResult p = probe(ch);
  ASSERT_TRUE(p.status.ok()) << p.status.error_message();
  EXPECT_EQ(p.response.agent_version(), "intruder");  // CN, the cert has no SAN
  v1::ListResponse listed;
  EXPECT_TRUE(v1::Agent::NewStub(ch)->List(call_ctx().get(), {}, &listed).ok());

  v1::ApplyResponse applied;
  grpc::Status st = call_apply(ch, &applied);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(st.error_message(), HasSubstr("identity intruder"));
}

TEST_F(TransportTest, ClientWithoutCertificateIsRejected) {
  std::unique_ptr<GrpcServer> server = start(tls_options());
  ASSERT_TRUE(server);
  // Server-verifying TLS, but no client certificate.
  grpc::experimental::TlsChannelCredentialsOptions tls;
  tls.set_certificate_provider(
      std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(cert("ca.crt"), 60));
  tls.watch_root_certs();
  grpc::ChannelArguments args;
  args.SetSslTargetNameOverride("localhost");
  auto ch = grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(server->tcp_port()),
                                      grpc::experimental::TlsCredentials(tls), args);
  EXPECT_EQ(probe(ch).status.error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(TransportTest, ClientFromAnotherCaIsRejected) {
  std::unique_ptr<GrpcServer> server = start(tls_options());
  ASSERT_TRUE(server);
  // "stranger" claims the controller's name, signed by a CA the agent does not trust.
  ChannelOptions o{.target = "127.0.0.1:" + std::to_string(server->tcp_port()),
                   .tls_cert_file = cert("stranger.crt"),
                   .tls_key_file = cert("stranger.key"),
                   .tls_ca_file = cert("ca.crt"),
                   .tls_server_name = "localhost"};
  Result<std::shared_ptr<grpc::Channel>> ch = make_channel(o);
  ASSERT_TRUE(ch.ok()) << ch.error().message();
  EXPECT_EQ(probe(*ch).status.error_code(), grpc::StatusCode::UNAVAILABLE);
  v1::ApplyResponse applied;
  EXPECT_FALSE(call_apply(*ch, &applied).ok());
}

TEST_F(TransportTest, PlaintextClientToTcpIsRefused) {
  Result<std::shared_ptr<grpc::Channel>> ch = make_channel({.target = "127.0.0.1:9443"});
  ASSERT_FALSE(ch.ok());
  EXPECT_EQ(ch.error().status_code(), Code::kFailedPrecondition);
  EXPECT_THAT(ch.error().message(), HasSubstr("refusing to connect in plaintext"));

  // And a plaintext gRPC client gets nowhere with the TLS listener.
  std::unique_ptr<GrpcServer> server = start(tls_options());
  ASSERT_TRUE(server);
  auto insecure = grpc::CreateChannel("127.0.0.1:" + std::to_string(server->tcp_port()),
                                      grpc::InsecureChannelCredentials());
  EXPECT_EQ(probe(insecure).status.error_code(), grpc::StatusCode::UNAVAILABLE);
}

// A TLS handshake with OpenSSL directly, so the version range is ours to choose.
struct Handshake {
  bool ok = false;
  int version = 0;
  std::string error;
};

Handshake raw_handshake(int port, int max_version, const std::string& cert_file,
                        const std::string& key_file, const std::string& ca_file) {
  Handshake h;
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx(SSL_CTX_new(TLS_client_method()),
                                                        SSL_CTX_free);
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  SSL_CTX_set_max_proto_version(ctx.get(), max_version);
  EXPECT_EQ(SSL_CTX_use_certificate_chain_file(ctx.get(), cert_file.c_str()), 1);
  EXPECT_EQ(SSL_CTX_use_PrivateKey_file(ctx.get(), key_file.c_str(), SSL_FILETYPE_PEM), 1);
  EXPECT_EQ(SSL_CTX_load_verify_locations(ctx.get(), ca_file.c_str(), nullptr), 1);
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  static const unsigned char kAlpn[] = {2, 'h', '2'};
  SSL_CTX_set_alpn_protos(ctx.get(), kAlpn, sizeof kAlpn);

  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) {
    h.error = std::string("connect: ") + std::strerror(errno);
    return h;
  }
  std::unique_ptr<SSL, decltype(&SSL_free)> ssl(SSL_new(ctx.get()), SSL_free);
  SSL_set_fd(ssl.get(), fd.get());
  SSL_set_tlsext_host_name(ssl.get(), "localhost");
  SSL_set1_host(ssl.get(), "localhost");
  if (SSL_connect(ssl.get()) == 1) {
    h.ok = true;
    h.version = SSL_version(ssl.get());
  } else {
    char buf[256];
    ERR_error_string_n(ERR_get_error(), buf, sizeof buf);
    h.error = buf;
  }
  ERR_clear_error();
  return h;
}

TEST_F(TransportTest, OnlyTls13IsNegotiated) {
  std::unique_ptr<GrpcServer> server = start(tls_options());
  ASSERT_TRUE(server);
  const Handshake tls13 = raw_handshake(server->tcp_port(), TLS1_3_VERSION, cert("controller.crt"),
                                        cert("controller.key"), cert("ca.crt"));
  ASSERT_TRUE(tls13.ok) << tls13.error;
  EXPECT_EQ(tls13.version, TLS1_3_VERSION);

  const Handshake tls12 = raw_handshake(server->tcp_port(), TLS1_2_VERSION, cert("controller.crt"),
                                        cert("controller.key"), cert("ca.crt"));
  EXPECT_FALSE(tls12.ok) << "negotiated version 0x" << std::hex << tls12.version;
  EXPECT_FALSE(tls12.error.empty());
}

TEST_F(TransportTest, RotatedCaBundleIsPickedUpWithoutRestart) {
  fs::create_directories(dir_);
  const fs::path ca = dir_ / "ca.crt";
  fs::copy_file(cert("ca.crt"), ca);
  ServerOptions o = tls_options();
  o.tls_ca_file = ca.string();
  o.tls_refresh_seconds = 1;
  std::unique_ptr<GrpcServer> server = start(o);
  ASSERT_TRUE(server);
  auto stranger = [&] {
    ChannelOptions c{.target = "127.0.0.1:" + std::to_string(server->tcp_port()),
                     .tls_cert_file = cert("stranger.crt"),
                     .tls_key_file = cert("stranger.key"),
                     .tls_ca_file = cert("ca.crt"),
                     .tls_server_name = "localhost"};
    return *make_channel(c);
  };
  ASSERT_FALSE(probe(stranger()).status.ok());

  // Trust the other CA too: write the new bundle aside and rename it into place.
  {
    std::ofstream out(dir_ / "ca.crt.new");
    out << std::ifstream(cert("ca.crt")).rdbuf() << std::ifstream(cert("other-ca.crt")).rdbuf();
  }
  fs::rename(dir_ / "ca.crt.new", ca);
  bool accepted = false;
  for (int i = 0; i < 40 && !accepted; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
    accepted = probe(stranger()).status.ok();
  }
  EXPECT_TRUE(accepted) << "the server kept the old CA bundle";
}

TEST_F(TransportTest, ShutdownIsIdempotent) {
  ServerOptions o = tls_options();
  o.unix_socket_path = (dir_ / "agent.sock").string();
  std::unique_ptr<GrpcServer> server = start(o);
  ASSERT_TRUE(server);
  const int port = server->tcp_port();
  std::thread waiter([&] { server->wait(); });
  server->shutdown(std::chrono::milliseconds(200));
  server->shutdown(std::chrono::milliseconds(200));
  waiter.join();
  EXPECT_FALSE(fs::exists(o.unix_socket_path));
  EXPECT_FALSE(probe(client(port, "controller")).status.ok());
  server.reset();  // the destructor's shutdown is a no-op now
}

TEST(AuthIdentities, SansFirstThenCommonName) {
  EXPECT_EQ(identities_of({.san_dns = {"a.example", "b.example"},
                           .san_uri = {"spiffe://td/ns/x"},
                           .common_name = "cn"}),
            (std::vector<std::string>{"a.example", "b.example", "spiffe://td/ns/x"}));
  EXPECT_EQ(identities_of({.common_name = "intruder"}), std::vector<std::string>{"intruder"});
  EXPECT_TRUE(identities_of({}).empty());
}

TEST(StatusMapping, CodeAndMessageSurvive) {
  grpc::Status s = to_grpc_status(Error::from_errno(ENOENT, "open /x"));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(s.error_message(), HasSubstr("open /x"));
  s = to_grpc_status(Error::invalid_argument("spec.netem.loss", "must be 0..100"));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message(), "spec.netem.loss: must be 0..100");
  s = to_grpc_status(Error::failed_precondition("netem needs sch_netem"));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);

  Error back = from_grpc_status(grpc::Status(grpc::StatusCode::PERMISSION_DENIED, "no"), "Apply");
  EXPECT_EQ(back.status_code(), Code::kPermissionDenied);
  EXPECT_EQ(back.message(), "Apply: no");
}

}  // namespace
}  // namespace nq
