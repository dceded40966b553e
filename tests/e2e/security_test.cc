// The security of a real `loom serve` (docs/security.md): API keys on gRPC and HTTP, the admin
// key per collective method, path roots, message size limits, the cluster secret between the
// controller and outside-launched workers, and TLS on the client API.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "loom/v1/worker.grpc.pb.h"
#include "proto/cluster_channel.h"
#include "tests/e2e/http_client.h"
#include "tests/e2e/weight_test_util.h"
#include "tests/test_paths.h"

namespace loom {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::Server;

constexpr char kClientKey[] = "client-key-0123456789";
constexpr char kAdminKey[] = "admin-key-9876543210";

std::string WriteFile(const std::string& dir, const std::string& name,
                      const std::string& contents) {
  const std::string path = dir + "/" + name;
  std::ofstream(path) << contents;
  return path;
}

// A stub whose every call carries `key` ("" = none).
std::unique_ptr<loom::v1::Loom::Stub> StubWithKey(const std::string& address,
                                                  const std::string& key) {
  std::vector<std::pair<std::string, std::string>> metadata;
  if (!key.empty()) metadata.push_back({"authorization", absl::StrCat("Bearer ", key)});
  return loom::v1::Loom::NewStub(ChannelWithMetadata(address, grpc::InsecureChannelCredentials(),
                                                     grpc::ChannelArguments(), metadata));
}

grpc::Status CallMethod(loom::v1::Loom::Stub& stub, const std::string& method, const json& args,
                        std::vector<json>* results = nullptr) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(2));
  loom::v1::CollectiveRpcRequest request;
  request.set_method(method);
  request.set_args_json(args.dump());
  loom::v1::CollectiveRpcResponse response;
  grpc::Status s = stub.CollectiveRpc(&context, request, &response);
  if (results != nullptr) {
    results->clear();
    for (const auto& r : response.results()) results->push_back(json::parse(r.result_json()));
  }
  return s;
}

grpc::Status GetStatus(loom::v1::Loom::Stub& stub, loom::v1::GetStatusResponse* out) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  return stub.GetStatus(&context, loom::v1::GetStatusRequest(), out);
}

uint64_t ServingVersion(loom::v1::Loom::Stub& admin) {
  loom::v1::GetStatusResponse status;
  EXPECT_TRUE(GetStatus(admin, &status).ok());
  return status.serving_weight_version();
}

// A server with both keys and one allowed root; `root` gets the root's path.
class KeyedServer {
 public:
  explicit KeyedServer(const std::string& extra = "") {
    dir_ = testing::MakeTempDir("loom-security");
    root_ = dir_ + "/root";
    fs::create_directories(root_);
    server_ = std::make_unique<Server>(testing::WeightTestServe(absl::StrCat(
        "--api-key-file ", WriteFile(dir_, "client.key", absl::StrCat(kClientKey, "\n")),
        " --admin-key-file ", WriteFile(dir_, "admin.key", kAdminKey), " --allowed-path-roots ",
        root_, " ", extra)));
  }
  Server& server() { return *server_; }
  const std::string& dir() const { return dir_; }
  const std::string& root() const { return root_; }

 private:
  std::string dir_, root_;
  std::unique_ptr<Server> server_;
};

TEST(SecurityTest, WithoutTheKeyEveryCallIsUnauthenticatedAndChangesNothing) {
  KeyedServer keyed;
  Server& server = keyed.server();
  ASSERT_SERVING(server);
  auto none = StubWithKey(server.address(), "");
  auto wrong = StubWithKey(server.address(), "not-the-key");
  auto admin = StubWithKey(server.address(), kAdminKey);
  const uint64_t version = ServingVersion(*admin);
  for (auto* stub : {none.get(), wrong.get()}) {
    loom::v1::GetStatusResponse status;
    EXPECT_EQ(GetStatus(*stub, &status).error_code(), grpc::StatusCode::UNAUTHENTICATED);
    testing::Streamed g = testing::GenerateIds(*stub, {1, 2, 3}, 2);
    EXPECT_EQ(g.status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
    EXPECT_TRUE(g.ids.empty());
    EXPECT_EQ(CallMethod(*stub, "describe", json::object()).error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
    EXPECT_EQ(CallMethod(*stub, "reload_weights", json::object()).error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
    grpc::ClientContext context;
    loom::v1::ShutdownResponse ignored;
    EXPECT_EQ(stub->Shutdown(&context, {}, &ignored).error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
  }
  EXPECT_EQ(ServingVersion(*admin), version);
  EXPECT_FALSE(server.Exited(std::chrono::milliseconds(200)));
  // No key shows in what the server wrote.
  EXPECT_FALSE(absl::StrContains(server.Log(), kClientKey));
  EXPECT_FALSE(absl::StrContains(server.Log(), kAdminKey));
}

TEST(SecurityTest, TheClientKeyServesButAdminMethodsNeedTheAdminKey) {
  KeyedServer keyed;
  Server& server = keyed.server();
  ASSERT_SERVING(server);
  auto client = StubWithKey(server.address(), kClientKey);
  auto admin = StubWithKey(server.address(), kAdminKey);
  const testing::HfReference ref = testing::WeightTestReference();
  testing::Streamed g = testing::GenerateIds(*client, ref.prompts[0], 4);
  ASSERT_TRUE(g.status.ok()) << g.status.error_message();
  EXPECT_EQ(g.ids, std::vector<int32_t>(ref.greedy[0].begin(), ref.greedy[0].begin() + 4));
  std::vector<json> ranks;
  ASSERT_TRUE(CallMethod(*client, "describe", json::object(), &ranks).ok());
  ASSERT_EQ(ranks.size(), 1u);
  EXPECT_FALSE(ranks[0]["methods"]["describe"]["admin"].get<bool>());
  EXPECT_TRUE(ranks[0]["methods"]["save_sharded_state"]["admin"].get<bool>());

  const uint64_t version = ServingVersion(*admin);
  const std::string saved = keyed.root() + "/saved";
  const json denied_calls[] = {
      {{"method", "reload_weights"}, {"args", json::object()}},
      {{"method", "update_config"}, {"args", {{"load_config", {{"dummy_seed", 5}}}}}},
      {{"method", "save_sharded_state"}, {"args", {{"path", saved}}}},
      {{"method", "sleep"}, {"args", {{"level", 1}}}},
      {{"method", "stage_weights"}, {"args", json::object()}},
  };
  for (const json& call : denied_calls) {
    grpc::Status s = CallMethod(*client, call["method"], call["args"]);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED) << call.dump();
    EXPECT_TRUE(absl::StrContains(s.error_message(), "admin key")) << s.error_message();
  }
  grpc::ClientContext context;
  loom::v1::ShutdownResponse ignored;
  EXPECT_EQ(client->Shutdown(&context, {}, &ignored).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  // Nothing changed: same version, awake, nothing saved, config untouched, still serving.
  loom::v1::GetStatusResponse status;
  ASSERT_TRUE(GetStatus(*client, &status).ok());
  EXPECT_EQ(status.serving_weight_version(), version);
  EXPECT_EQ(status.sleep_level(), 0);
  EXPECT_EQ(status.staged_weight_version(), 0u);
  EXPECT_FALSE(fs::exists(saved));
  EXPECT_FALSE(server.Exited(std::chrono::milliseconds(200)));

  // The admin key does what the client key may not.
  ASSERT_TRUE(CallMethod(*admin, "reload_weights", json::object()).ok());
  EXPECT_GT(ServingVersion(*admin), version);
  grpc::Status patched =
      CallMethod(*admin, "update_config", {{"load_config", {{"dummy_seed", 5}}}});
  EXPECT_TRUE(patched.ok()) << patched.error_message();
  ASSERT_TRUE(CallMethod(*admin, "save_sharded_state", {{"path", saved}}).ok());
  EXPECT_TRUE(fs::exists(saved));
  grpc::ClientContext stop;
  ASSERT_TRUE(admin->Shutdown(&stop, {}, &ignored).ok());
  EXPECT_TRUE(server.Exited(std::chrono::seconds(20))) << server.Log();
}

TEST(SecurityTest, PathsOutsideTheAllowedRootsAreRefusedAndNothingIsWritten) {
  KeyedServer keyed;
  Server& server = keyed.server();
  ASSERT_SERVING(server);
  auto admin = StubWithKey(server.address(), kAdminKey);
  const std::string outside = keyed.dir() + "/outside";
  // A symlink inside the root that leads out of it.
  fs::create_directories(keyed.dir() + "/elsewhere");
  fs::create_symlink(keyed.dir() + "/elsewhere", keyed.root() + "/link");
  struct Refused {
    std::string path;
    grpc::StatusCode code;
    std::string says;
  } refused[] = {
      {outside, grpc::StatusCode::PERMISSION_DENIED, "outside the allowed roots"},
      {keyed.root() + "/../outside", grpc::StatusCode::INVALID_ARGUMENT, ".."},
      {keyed.root() + "/link/saved", grpc::StatusCode::PERMISSION_DENIED, "outside"},
      {"relative/saved", grpc::StatusCode::INVALID_ARGUMENT, "absolute"},
      {keyed.root() + "2", grpc::StatusCode::PERMISSION_DENIED, "outside"},  // a sibling prefix
  };
  for (const Refused& r : refused) {
    grpc::Status s = CallMethod(*admin, "save_sharded_state", {{"path", r.path}});
    EXPECT_EQ(s.error_code(), r.code) << r.path << ": " << s.error_message();
    EXPECT_TRUE(absl::StrContains(s.error_message(), r.says)) << s.error_message();
  }
  EXPECT_FALSE(fs::exists(outside));
  EXPECT_TRUE(fs::is_empty(keyed.dir() + "/elsewhere"));
  EXPECT_FALSE(fs::exists(keyed.root() + "2"));
  // Model directories of update_config and stage_weights are confined alike.
  grpc::Status s = CallMethod(*admin, "update_config",
                              {{"load_config", {{"model", testing::WeightTestModel()}}}});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED) << s.error_message();
  EXPECT_TRUE(absl::StrContains(s.error_message(), "outside the allowed roots"))
      << s.error_message();
  s = CallMethod(*admin, "stage_weights", {{"source", {{"model", testing::WeightTestModel()}}}});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED) << s.error_message();
  loom::v1::GetStatusResponse status;
  ASSERT_TRUE(GetStatus(*admin, &status).ok());
  EXPECT_EQ(status.staged_weight_version(), 0u);
  EXPECT_EQ(status.model(), testing::WeightTestModel());
  // Inside the root (through a path the save creates) it works.
  ASSERT_TRUE(CallMethod(*admin, "save_sharded_state", {{"path", keyed.root() + "/a/b"}}).ok());
  EXPECT_TRUE(fs::exists(keyed.root() + "/a/b"));
}

TEST(SecurityTest, HttpNeedsTheKeyButHealthAndMetricsStayOpen) {
  KeyedServer keyed("--served-model-name m");
  Server& server = keyed.server();
  ASSERT_SERVING(server);
  httplib::Client http = testing::HttpClient(server.http_address());
  auto health = http.Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  auto metrics = http.Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_EQ(metrics->status, 200);
  const std::string body = R"({"model": "m", "prompt": [1, 2, 3], "max_tokens": 2})";
  for (const std::string& auth :
       {std::string(), std::string("Bearer wrong"), std::string("Basic ") + kClientKey}) {
    httplib::Headers headers;
    if (!auth.empty()) headers.insert({"Authorization", auth});
    auto models = http.Get("/v1/models", headers);
    ASSERT_TRUE(models);
    EXPECT_EQ(models->status, 401) << auth;
    const json error = json::parse(models->body, nullptr, false);
    ASSERT_TRUE(error.contains("error")) << models->body;
    EXPECT_TRUE(error["error"]["message"].is_string());
    EXPECT_EQ(error["error"]["type"], "invalid_request_error");
    auto completion = http.Post("/v1/completions", headers, body, "application/json");
    ASSERT_TRUE(completion);
    EXPECT_EQ(completion->status, 401);
  }
  for (const char* key : {kClientKey, kAdminKey}) {
    httplib::Headers headers = {{"Authorization", absl::StrCat("Bearer ", key)}};
    auto models = http.Get("/v1/models", headers);
    ASSERT_TRUE(models);
    EXPECT_EQ(models->status, 200);
    auto completion = http.Post("/v1/completions", headers, body, "application/json");
    ASSERT_TRUE(completion);
    EXPECT_EQ(completion->status, 200) << completion->body;
  }
}

TEST(SecurityTest, MetricsNeedTheKeyWhenAsked) {
  KeyedServer keyed("--metrics-need-key");
  Server& server = keyed.server();
  ASSERT_SERVING(server);
  httplib::Client http = testing::HttpClient(server.http_address());
  auto open = http.Get("/metrics");
  ASSERT_TRUE(open);
  EXPECT_EQ(open->status, 401);
  auto keyed_metrics =
      http.Get("/metrics", {{"Authorization", absl::StrCat("Bearer ", kClientKey)}});
  ASSERT_TRUE(keyed_metrics);
  EXPECT_EQ(keyed_metrics->status, 200);
  auto health = http.Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
}

TEST(SecurityTest, BadKeyFilesAreClearErrors) {
  const std::string dir = testing::MakeTempDir("loom-security");
  const std::string empty = WriteFile(dir, "empty.key", "\n");
  struct Case {
    std::string args, says;
  } cases[] = {
      {"--api-key-file " + dir + "/missing.key", "--api-key-file: cannot read"},
      {"--admin-key-file " + empty, "--admin-key-file " + empty + ": empty"},
      {"--api-key a --api-key-file " + empty, "not both"},
      {"--api-key same --admin-key same", "must differ"},
      {"--allowed-path-roots " + dir + "/missing", "not an existing directory"},
      {"--tls-cert " + empty, "go together"},
  };
  for (const Case& c : cases) {
    std::string out;
    const int code = testing::RunCommand(
        absl::StrCat("timeout -s KILL 30 ", testing::BinaryDir(), "/tools/loom serve --model ",
                     testing::WeightTestModel(), " --port 0 --http-port 0 ", c.args, " 2>&1"),
        &out);
    EXPECT_NE(code, 0) << c.args;
    EXPECT_TRUE(absl::StrContains(out, c.says)) << c.args << ": " << out;
  }
}

TEST(SecurityTest, OversizeMessagesAreRefused) {
  Server server(testing::WeightTestServe("--max-message-size 64K"));
  ASSERT_SERVING(server);
  // The client API: a request over --max-message-size.
  loom::v1::GenerateRequest big = testing::IdsRequest({1, 2, 3}, 2);
  big.set_prompt(std::string(100 << 10, 'a'));
  testing::Streamed refused = testing::Generate(server.stub(), big);
  EXPECT_EQ(refused.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
      << refused.status.error_message();
  grpc::ClientContext context;
  loom::v1::CollectiveRpcRequest call;
  call.set_method("describe");
  call.set_args_json(json{{"pad", std::string(100 << 10, 'b')}}.dump());
  loom::v1::CollectiveRpcResponse response;
  EXPECT_EQ(server.stub().CollectiveRpc(&context, call, &response).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
  // Under the limit the same server serves.
  testing::Streamed ok = testing::Generate(server.stub(), testing::IdsRequest({1, 2, 3}, 2));
  EXPECT_TRUE(ok.status.ok()) << ok.status.error_message();

  // A worker's channel: over kClusterMessageBytes is refused before the worker reads it.
  const loom::v1::GetStatusResponse status = server.Status();
  ASSERT_EQ(status.ranks_size(), 1);
  grpc::ChannelArguments unlimited;
  unlimited.SetMaxSendMessageSize(-1);
  auto worker = loom::v1::Worker::NewStub(grpc::CreateCustomChannel(
      status.ranks(0).address(), grpc::InsecureChannelCredentials(), unlimited));
  // Well over gRPC's 4 MiB default: the limit is the one set, not the library's.
  grpc::ClientContext fits_context;
  loom::v1::CallRequest fits;
  fits.set_method("describe");
  fits.set_args_json(json{{"pad", std::string(8 << 20, 'c')}}.dump());
  loom::v1::CallResponse described;
  grpc::Status fit = worker->Call(&fits_context, fits, &described);
  EXPECT_TRUE(fit.ok()) << fit.error_message();
  grpc::ClientContext worker_context;
  worker_context.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(1));
  loom::v1::CallRequest huge;
  huge.set_method("describe");
  huge.set_args_json(std::string(kClusterMessageBytes + 1, ' '));
  loom::v1::CallResponse ignored;
  EXPECT_EQ(worker->Call(&worker_context, huge, &ignored).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
}

// Whether `pid` exits within `timeout`; its exit code in `code`.
bool ExitsWithin(pid_t pid, std::chrono::milliseconds timeout, int* code) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      *code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

TEST(SecurityTest, ExternalWorkersAndTheControllerTakeCallsOnlyWithTheClusterSecret) {
  const std::string dir = testing::MakeTempDir("loom-security");
  const std::string secret_file = WriteFile(dir, "cluster.secret", "cluster-secret-42\n");
  const std::string wrong_file = WriteFile(dir, "wrong.secret", "cluster-secret-43\n");
  const std::string marker = "loom-worker --controller ";
  std::string controller;
  pid_t intruder = -1, worker = -1;
  int intruder_code = -1;
  Server server(testing::WeightTestServe(
                    absl::StrCat("--launcher external --cluster-secret-file ", secret_file)),
                [&](const std::string& log) {
                  const size_t at = log.find(marker);
                  if (worker > 0 || at == std::string::npos) return;
                  const size_t begin = at + marker.size();
                  controller = log.substr(begin, log.find(' ', begin) - begin);
                  const std::string binary = testing::BinaryDir() + "/worker/loom-worker";
                  // A worker with the wrong secret cannot register: it exits, and rank 0 stays
                  // free.
                  intruder = testing::SpawnTiedChild({binary, "--controller", controller, "--rank",
                                                      "0", "--world-size", "1", "--threads", "1",
                                                      "--cluster-secret-file", wrong_file});
                  EXPECT_TRUE(ExitsWithin(intruder, std::chrono::seconds(20), &intruder_code));
                  worker = testing::SpawnTiedChild({binary, "--controller", controller, "--rank",
                                                    "0", "--world-size", "1", "--threads", "1",
                                                    "--cluster-secret-file", secret_file});
                });
  ASSERT_SERVING(server);
  EXPECT_EQ(intruder_code, 1);
  const loom::v1::GetStatusResponse status = server.Status();
  ASSERT_EQ(status.ranks_size(), 1);
  EXPECT_EQ(status.ranks(0).pid(), worker);
  EXPECT_FALSE(absl::StrContains(server.Log(), "cluster-secret-42"));

  // The worker's own port: only calls with the secret.
  for (const std::string secret : {std::string(), std::string("cluster-secret-43")}) {
    auto stub = loom::v1::Worker::NewStub(ClusterChannel(status.ranks(0).address(), secret));
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    loom::v1::CallRequest call;
    call.set_method("describe");
    loom::v1::CallResponse response;
    EXPECT_EQ(stub->Call(&context, call, &response).error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
    grpc::ClientContext shutdown_context;
    loom::v1::WorkerShutdownResponse ignored;
    EXPECT_EQ(stub->Shutdown(&shutdown_context, {}, &ignored).error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
    // Nor does the controller's store answer without it.
    auto store = loom::v1::Controller::NewStub(ClusterChannel(controller, secret));
    grpc::ClientContext store_context;
    loom::v1::StoreSetRequest set;
    set.set_key("intruder");
    loom::v1::StoreSetResponse set_response;
    EXPECT_EQ(store->StoreSet(&store_context, set, &set_response).error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
  }
  auto stub =
      loom::v1::Worker::NewStub(ClusterChannel(status.ranks(0).address(), "cluster-secret-42"));
  grpc::ClientContext context;
  loom::v1::HealthResponse health;
  EXPECT_TRUE(stub->Health(&context, {}, &health).ok());
  // The worker was not shut down by the refused calls, and serves.
  const testing::HfReference ref = testing::WeightTestReference();
  testing::Streamed g = testing::GenerateIds(server.stub(), ref.prompts[0], 4);
  ASSERT_TRUE(g.status.ok()) << g.status.error_message();
}

TEST(SecurityTest, TheClientApisSpeakTlsWithACertificate) {
  const std::string dir = testing::MakeTempDir("loom-security");
  std::string out;
  if (testing::RunCommand("command -v openssl", &out) != 0) GTEST_SKIP() << "no openssl";
  ASSERT_EQ(
      testing::RunCommand(
          absl::StrCat("openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost "
                       "-addext subjectAltName=IP:127.0.0.1,DNS:localhost -keyout ",
                       dir, "/key.pem -out ", dir, "/cert.pem 2>&1"),
          &out),
      0)
      << out;
  Server server(testing::WeightTestServe(
      absl::StrCat("--tls-cert ", dir, "/cert.pem --tls-key ", dir, "/key.pem")));
  ASSERT_SERVING(server);
  std::ifstream in(dir + "/cert.pem");
  std::stringstream pem;
  pem << in.rdbuf();
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = pem.str();
  auto tls =
      loom::v1::Loom::NewStub(grpc::CreateChannel(server.address(), grpc::SslCredentials(ssl)));
  loom::v1::GetStatusResponse status;
  grpc::Status s = GetStatus(*tls, &status);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(status.tensor_parallel_size(), 1);
  testing::Streamed g = testing::GenerateIds(*tls, {1, 2, 3}, 2);
  EXPECT_TRUE(g.status.ok()) << g.status.error_message();
  // Plaintext gets no answer.
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(3));
  loom::v1::GetStatusResponse ignored;
  EXPECT_FALSE(server.stub().GetStatus(&context, {}, &ignored).ok());
  // The HTTP API speaks HTTPS with the same certificate.
  const std::string log = server.Log();
  const std::string https = "OpenAI API on https://";
  const size_t at = log.find(https);
  ASSERT_NE(at, std::string::npos) << log;
  const std::string host_port =
      log.substr(at + https.size(), log.find("/v1", at) - at - https.size());
  httplib::SSLClient client("127.0.0.1", std::stoi(host_port.substr(host_port.rfind(':') + 1)));
  client.set_ca_cert_path((dir + "/cert.pem").c_str());
  client.enable_server_certificate_verification(true);
  auto health = client.Get("/health");
  ASSERT_TRUE(health) << httplib::to_string(health.error());
  EXPECT_EQ(health->status, 200);
  httplib::Client plain("127.0.0.1", std::stoi(host_port.substr(host_port.rfind(':') + 1)));
  EXPECT_FALSE(plain.Get("/health") && plain.Get("/health")->status == 200);
  // The CLI reaches it with --tls-ca.
  ASSERT_EQ(testing::RunCommand(absl::StrCat(testing::BinaryDir(), "/tools/loom status --address ",
                                             server.address(), " --tls-ca ", dir, "/cert.pem 2>&1"),
                                &out),
            0)
      << out;
}

}  // namespace
}  // namespace loom
