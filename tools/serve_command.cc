// `loom serve`: starts the controller — the worker processes, the engine loop and the Loom gRPC
// service — and serves until SIGINT or a client's Shutdown (at once), or SIGTERM (draining: the
// running requests finish within --shutdown-grace, new ones are refused).
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/secret.h"
#include "common/status.h"
#include "controller/loom_service.h"
#include "controller/openai/openai_server.h"
#include "controller/serving_engine.h"
#include "proto/cluster_channel.h"
#include "tools/commands.h"
#include "tools/load_progress.h"
#include "tools/engine_flags.h"

namespace loom::cli {
// loom-worker beside this executable, or in the build tree's worker/ directory.
std::string DefaultWorkerBinary() {
  std::error_code ec;
  const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return "loom-worker";
  for (const auto& candidate : {self.parent_path() / "loom-worker",
                                self.parent_path().parent_path() / "worker" / "loom-worker"}) {
    if (std::filesystem::exists(candidate)) return candidate.string();
  }
  return "loom-worker";
}

namespace {

std::atomic<bool> stop_requested{false};   // stop now: SIGINT, a second SIGTERM, `loom stop`
std::atomic<bool> drain_requested{false};  // SIGTERM: finish what runs, take nothing new

void OnSignal(int signal) {
  if (signal == SIGTERM && !drain_requested.exchange(true)) return;
  stop_requested.store(true);
}

std::vector<FlagSpec> ServeFlagSpecs() {
  std::vector<FlagSpec> specs = EngineFlagSpecs();
  std::vector<FlagSpec> more = {
      {"tp", false, "tensor-parallel size: worker processes, one per rank", "1"},
      {"host", false, "address the Loom service binds to", "127.0.0.1"},
      {"port", false, "port of the Loom service (0 = any free port)", std::to_string(kDefaultPort)},
      {"http-port", false,
       "port of the OpenAI-compatible HTTP API on --host (0 = off, any = any free port)", "8000"},
      {"served-model-name", false, "the model name HTTP clients pass", "the --model directory's name"},
      {"max-waiting", false,
       "requests that may wait to run; more are refused (HTTP 429, gRPC RESOURCE_EXHAUSTED), 0 = no limit",
       "0"},
      {"launcher", false, "local (spawn the workers) or external (wait for them)", "local"},
      {"controller-address", false,
       "external launcher: where workers reach the controller (HOST:PORT)", "127.0.0.1:0"},
      {"device", false, "device handed to every worker", "cpu"},
      {"worker-binary", false, "the loom-worker executable", "beside loom"},
      {"worker-arg", false, "an extra argument for every worker; repeatable", ""},
      {"register-timeout", false, "seconds to wait for every worker to register", "60"},
      {"rpc-timeout", false, "default deadline of a collective RPC, in seconds", "30"},
      {"max-restarts", false,
       "times the ranks are restarted after a worker fails, within --restart-window; 0: never",
       "3"},
      {"restart-window", false, "seconds over which --max-restarts counts", "600"},
      {"on-rank-failure", false,
       "requests in flight when a worker fails: recompute (on the restarted ranks) or fail",
       "recompute"},
      {"shutdown-grace", false,
       "on SIGTERM, seconds the running requests have to finish (new ones are refused) before "
       "the server stops; a second SIGTERM or SIGINT stops at once",
       "30"},
      {"api-key", false,
       "the client API's key: gRPC metadata and HTTP header \"authorization: Bearer KEY\" "
       "(visible to `ps`: prefer --api-key-file)",
       "none: open"},
      {"api-key-file", false, "file holding the client API's key", ""},
      {"admin-key", false,
       "key for the calls that change state or touch files (weights, update_config, sleep, "
       "shutdown, ...); without it the client key is needed for those too",
       "none"},
      {"admin-key-file", false, "file holding the admin key", ""},
      {"metrics-need-key", true, "GET /metrics needs the key too (it is open by default)", ""},
      {"allowed-path-roots", false,
       "comma-separated directories the path args of collective methods (save_sharded_state, "
       "update_config and stage_weights model dirs) must lie in; repeatable",
       "none: any path"},
      {"max-message-size", false,
       "largest gRPC message the client API takes or sends (larger: RESOURCE_EXHAUSTED)", "16M"},
      {"tls-cert", false, "PEM certificate chain: the gRPC and HTTP APIs speak TLS", ""},
      {"tls-key", false, "PEM private key of --tls-cert", ""},
      {"cluster-secret-file", false,
       "the per-cluster secret every controller <-> worker call carries (external workers "
       "must be given the same one)",
       "$LOOM_CLUSTER_SECRET"},
      {"help", true, "show this help", ""},
  };
  specs.insert(specs.end(), more.begin(), more.end());
  return specs;
}

// The key of --NAME or --NAME-file (not both); "" when neither.
absl::StatusOr<std::string> KeyFlag(const Flags& flags, const std::string& name) {
  const std::string value = flags.String(name);
  const std::string file = flags.String(name + "-file");
  if (!value.empty() && !file.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("pass --", name, " or --", name, "-file, not both"));
  }
  if (!file.empty()) return ReadSecretFile(file, absl::StrCat("--", name, "-file"));
  if (flags.Has(name)) LOOM_RETURN_IF_ERROR(CheckSecret(value, absl::StrCat("--", name)));
  return value;
}

absl::StatusOr<std::string> ReadPem(const std::string& path, const char* flag) {
  std::ifstream in(path);
  std::stringstream pem;
  pem << in.rdbuf();
  if (!in || pem.str().empty()) {
    return absl::InvalidArgumentError(absl::StrCat(flag, ": cannot read ", path));
  }
  return pem.str();
}

bool IsLoopback(const std::string& host) {
  return host == "127.0.0.1" || host == "localhost" || host == "::1" || host == "[::1]";
}

absl::Status Run(const Flags& flags) {
  ServingEngineOptions options;
  LOOM_ASSIGN_OR_RETURN(options.config, EngineConfigFromFlags(flags));
  LOOM_ASSIGN_OR_RETURN(int64_t tp, flags.Int("tp", 1));
  if (tp < 1 || tp > 1024) return absl::InvalidArgumentError("--tp must be in [1, 1024]");
  LOOM_ASSIGN_OR_RETURN(int64_t port, flags.Int("port", kDefaultPort));
  if (port < 0 || port > 65535) return absl::InvalidArgumentError("--port must be in [0, 65535]");
  // -1: any free port.
  int64_t http_port = -1;
  if (flags.String("http-port", "8000") != "any") {
    LOOM_ASSIGN_OR_RETURN(http_port, flags.Int("http-port", 8000));
    if (http_port < 0 || http_port > 65535) {
      return absl::InvalidArgumentError("--http-port must be in [0, 65535] or any");
    }
  }
  LOOM_ASSIGN_OR_RETURN(options.max_waiting, flags.Int("max-waiting", 0));
  if (options.max_waiting < 0) return absl::InvalidArgumentError("--max-waiting must be >= 0");
  LOOM_ASSIGN_OR_RETURN(int64_t register_s, flags.Int("register-timeout", 60));
  LOOM_ASSIGN_OR_RETURN(int64_t rpc_s, flags.Int("rpc-timeout", 30));
  if (register_s <= 0 || rpc_s <= 0) {
    return absl::InvalidArgumentError("--register-timeout and --rpc-timeout must be positive");
  }
  LOOM_ASSIGN_OR_RETURN(int64_t max_restarts, flags.Int("max-restarts", 3));
  LOOM_ASSIGN_OR_RETURN(int64_t window_s, flags.Int("restart-window", 600));
  if (max_restarts < 0 || max_restarts > 1000 || window_s <= 0) {
    return absl::InvalidArgumentError(
        "--max-restarts must be in [0, 1000] and --restart-window positive");
  }
  options.recovery.max_restarts = static_cast<int>(max_restarts);
  options.recovery.window = std::chrono::seconds(window_s);
  const std::string on_failure = flags.String("on-rank-failure", "recompute");
  if (on_failure != "recompute" && on_failure != "fail") {
    return absl::InvalidArgumentError(absl::StrCat(
        "--on-rank-failure: \"", on_failure, "\" is not recompute or fail"));
  }
  options.recovery.fail_in_flight = on_failure == "fail";
  LOOM_ASSIGN_OR_RETURN(int64_t grace_s, flags.Int("shutdown-grace", 30));
  if (grace_s < 0) return absl::InvalidArgumentError("--shutdown-grace must be >= 0");
  const std::string launcher = flags.String("launcher", "local");
  if (launcher != "local" && launcher != "external") {
    return absl::InvalidArgumentError(
        absl::StrCat("--launcher must be local or external, not \"", launcher, "\""));
  }
  ApiKeys keys;
  LOOM_ASSIGN_OR_RETURN(keys.client, KeyFlag(flags, "api-key"));
  LOOM_ASSIGN_OR_RETURN(keys.admin, KeyFlag(flags, "admin-key"));
  if (!keys.admin.empty() && keys.admin == keys.client) {
    return absl::InvalidArgumentError("the admin key must differ from the client key");
  }
  std::vector<std::string> roots;
  for (const std::string& list : flags.All("allowed-path-roots")) {
    for (absl::string_view root : absl::StrSplit(list, ',', absl::SkipWhitespace())) {
      roots.emplace_back(root);
    }
  }
  LOOM_ASSIGN_OR_RETURN(options.path_roots, PathRoots::Make(roots));
  LoomServerOptions server_options;
  LOOM_ASSIGN_OR_RETURN(const int64_t max_message, flags.Bytes("max-message-size", 16 << 20));
  if (max_message < 1024 || max_message > (int64_t{1} << 30)) {
    return absl::InvalidArgumentError("--max-message-size must be in [1K, 1G]");
  }
  server_options.max_message_bytes = static_cast<int>(max_message);
  const std::string tls_cert = flags.String("tls-cert");
  const std::string tls_key = flags.String("tls-key");
  if (tls_cert.empty() != tls_key.empty()) {
    return absl::InvalidArgumentError("--tls-cert and --tls-key go together");
  }
  if (!tls_cert.empty()) {
    LOOM_ASSIGN_OR_RETURN(server_options.tls_cert_pem, ReadPem(tls_cert, "--tls-cert"));
    LOOM_ASSIGN_OR_RETURN(server_options.tls_key_pem, ReadPem(tls_key, "--tls-key"));
  }
  const std::string host = flags.String("host", "127.0.0.1");
  server_options.address = absl::StrCat(host, ":", port);
  if (!IsLoopback(host) && !keys.any()) {
    std::fprintf(stderr,
                 "loom serve: warning: --host %s without --api-key: whoever reaches the port "
                 "can generate, and load or save weights (docs/security.md)\n",
                 host.c_str());
  }

  SupervisorOptions& sup = options.supervisor;
  sup.world_size = static_cast<int>(tp);
  sup.external = launcher == "external";
  sup.worker_binary = flags.String("worker-binary", DefaultWorkerBinary());
  sup.device = flags.String("device", "cpu");
  sup.threads_per_worker = options.config.num_threads;
  sup.extra_worker_args = flags.All("worker-arg");
  sup.register_timeout = std::chrono::seconds(register_s);
  LOOM_ASSIGN_OR_RETURN(sup.cluster_secret, ClusterSecretFrom(flags.String("cluster-secret-file")));
  if (sup.external && sup.cluster_secret.empty()) {
    std::fprintf(stderr,
                 "loom serve: warning: external workers without a cluster secret: whoever "
                 "reaches the controller or a worker port can join or drive the cluster "
                 "(--cluster-secret-file, docs/security.md)\n");
  }
  if (sup.external) {
    sup.controller_address = flags.String("controller-address", "127.0.0.1:0");
    sup.on_listening = [](const std::string& address) {
      std::printf(
          "loom serve: waiting for workers: loom-worker --controller %s --rank R "
          "--world-size N\n",
          address.c_str());
      std::fflush(stdout);
    };
  }

  struct sigaction action = {};
  action.sa_handler = OnSignal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);

  // HTTP listens before the weights load, so /health answers (503, with the load's progress)
  // while they do, and a port in use fails at once rather than after the load.
  std::unique_ptr<openai::OpenAiServer> http;
  openai::OpenAiServerOptions http_options;
  const char* scheme = tls_cert.empty() ? "http" : "https";
  if (http_port != 0) {
    http_options.host = flags.String("host", "127.0.0.1");
    http_options.port = http_port < 0 ? 0 : static_cast<int>(http_port);
    http_options.model_name = flags.String(
        "served-model-name", std::filesystem::path(options.config.load.model).filename().string());
    if (http_options.model_name.empty()) http_options.model_name = options.config.load.model;
    http_options.keys = keys;
    http_options.tls_cert_path = tls_cert;
    http_options.tls_key_path = tls_key;
    http_options.metrics_need_key = flags.Bool("metrics-need-key");
    LOOM_ASSIGN_OR_RETURN(http, openai::OpenAiServer::Start(nullptr, http_options));
    std::printf("loom serve: HTTP on %s://%s:%d (GET /health is 503 until the weights load)\n",
                scheme, http_options.host.c_str(), http->port());
    std::fflush(stdout);
  }

  LoadProgressPrinter progress(stderr);
  options.on_load_progress = [&progress, &http](const std::vector<nlohmann::json>& ranks) {
    if (http != nullptr) http->SetLoading(openai::LoadBytesOf(ranks));
    std::vector<RankLoad> loads;
    for (size_t r = 0; r < ranks.size(); ++r) {
      if (!ranks[r].is_object()) continue;
      const nlohmann::json p = ranks[r].value("progress", nlohmann::json::object());
      loads.push_back({static_cast<int>(r), ranks[r].value("state", ""),
                       p.value("bytes_done", int64_t{0}), p.value("bytes_total", int64_t{0})});
    }
    if (!loads.empty()) progress.Update(loads);
  };
  LOOM_ASSIGN_OR_RETURN(std::unique_ptr<ServingEngine> engine, ServingEngine::Start(options));
  // Whatever way this returns, HTTP stops before the engine it serves goes.
  struct StopFirst {
    std::unique_ptr<openai::OpenAiServer>& http;
    ~StopFirst() {
      if (http != nullptr) http->Stop();
    }
  } stop_http_first{http};
  LoomServiceOptions service_options;
  service_options.default_rpc_timeout = std::chrono::seconds(rpc_s);
  service_options.on_shutdown = [] { stop_requested.store(true); };
  service_options.keys = keys;
  LoomService service(engine.get(), service_options);
  std::string address;
  LOOM_ASSIGN_OR_RETURN(
      std::unique_ptr<grpc::Server> server,
      StartLoomServer(&service, server_options, &address));

  const EngineStatus status = engine->Status();
  std::string ranks;
  for (const RankState& r : status.ranks) {
    absl::StrAppend(&ranks, " rank ", r.rank, "=", r.state, "(pid ", r.pid, ", ", r.device, ")");
  }
  if (http != nullptr) {
    http->Attach(engine.get());
    std::printf("loom serve: OpenAI API on %s://%s:%d/v1 (model \"%s\")\n", scheme,
                http_options.host.c_str(), http->port(), http_options.model_name.c_str());
  }
  std::printf("loom serve: listening on %s\n", address.c_str());
  std::printf("loom serve: ready: %s, tp=%d, %lld KV blocks, tokenizer %s;%s\n",
              status.model.c_str(), status.world_size, static_cast<long long>(status.num_kv_blocks),
              engine->has_tokenizer() ? "loaded" : "absent (prompt ids only)", ranks.c_str());
  std::fflush(stdout);

  while (!stop_requested.load() && !drain_requested.load()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (!stop_requested.load()) {
    // Graceful: new requests are refused (HTTP 503, gRPC UNAVAILABLE) and /health says
    // "draining", while those in flight get up to --shutdown-grace seconds to finish.
    engine->Drain();
    std::fprintf(stderr, "loom serve: draining %lld requests (up to %llds)\n",
                 static_cast<long long>(engine->InFlight()), static_cast<long long>(grace_s));
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(grace_s);
    while (!stop_requested.load() && engine->InFlight() > 0 &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (engine->InFlight() > 0) {
      std::fprintf(stderr, "loom serve: %lld requests still running end now\n",
                   static_cast<long long>(engine->InFlight()));
    }
  }
  std::fprintf(stderr, "loom serve: stopping\n");
  if (http != nullptr) http->Stop();
  engine->Stop();  // ends the in-flight streams, so the server's handlers return
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  server->Wait();
  return absl::OkStatus();
}

}  // namespace

int ServeCommand(int argc, char** argv) {
  return RunVerb(
      "serve", argc, argv, ServeFlagSpecs(),
      "usage: loom serve --model DIR [--tp N] [--port P] [--host H] "
      "[--launcher local|external] [options]\n\n"
      "Starts one loom-worker process per tensor-parallel rank and serves the Loom gRPC\n"
      "API (Generate, CollectiveRpc, GetStatus, Shutdown; server reflection on) until\n"
      "SIGINT or `loom stop` (at once), or SIGTERM (drains: running requests get\n"
      "--shutdown-grace seconds to finish, new ones are refused). A dead worker makes the\n"
      "server restart every worker (--max-restarts within --restart-window) and reload the\n"
      "serving weights; requests in flight are recomputed (--on-rank-failure) and new ones\n"
      "wait. docs/fault_tolerance.md.\n\n"
      "Keys (--api-key-file, --admin-key-file), path roots, message limits, TLS and the\n"
      "cluster secret of external workers: docs/security.md.\n",
      Run);
}

}  // namespace loom::cli
