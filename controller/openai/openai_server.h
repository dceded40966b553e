// The OpenAI-compatible HTTP API of `loom serve` (`--http-port`), on the same ServingEngine as the
// gRPC API: one scheduler, one tokenizer, the same weight versions.
//
// Endpoints: POST /v1/completions (JSON, or SSE with `stream`: `data: {chunk}` events ending
// with `data: [DONE]`), GET /v1/models, GET /health (200 serving; 503 loading, draining or
// broken; says whether the weights are dummy), GET /metrics (Prometheus text, metrics_text.h),
// POST /tokenize, POST /detokenize,
// GET /version. With API keys (OpenAiServerOptions::keys) all but /health need one.
// Every response and chunk carries `weight_version` (and `system_fingerprint`
// "loom-wv<version>"). POST /v1/chat/completions renders the model's chat template
// (chat_request.h) and answers in the chat API's shape.
// Errors have OpenAI's shape (api_error.h); a body over max_body_bytes is 413; a client that
// disconnects cancels its requests. cpp-httplib (Debian's libcpp-httplib) serves HTTP/1.1 with a
// thread per connection from a pool, so `threads` bounds the connections served at once.
//
// The server may start before its engine (so a load of minutes answers /health with its
// progress): until Attach, /health is 503 {"status": "loading", ranks' bytes}, /metrics shows
// the load, and every other path is 503.
#ifndef LOOM_CONTROLLER_OPENAI_OPENAI_SERVER_H_
#define LOOM_CONTROLLER_OPENAI_OPENAI_SERVER_H_

#include <atomic>
#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "controller/api_keys.h"
#include "controller/openai/chat_request.h"
#include "controller/openai/completion_request.h"
#include "controller/openai/metrics_text.h"
#include "controller/serving_engine.h"

namespace httplib {
class Server;
struct Response;
}

namespace loom::openai {

struct OpenAiServerOptions {
  std::string host = "127.0.0.1";
  int port = 8000;  // 0: any free port (port() says which)
  std::string model_name;  // what clients pass as `model`; GET /v1/models lists it
  size_t max_body_bytes = size_t{8} << 20;
  int threads = 160;  // connections served at once
  // With a key, every path but /health (and /metrics unless metrics_need_key) needs
  // `Authorization: Bearer KEY`, the client or the admin key (controller/api_keys.h); else 401.
  ApiKeys keys;
  bool metrics_need_key = false;
  // HTTPS: PEM files of the certificate chain and its private key (both or neither). Needs
  // cpp-httplib built with OpenSSL (Debian's is); otherwise Start fails saying so.
  std::string tls_cert_path;
  std::string tls_key_path;
};

class OpenAiServer {
 public:
  // Binds and starts serving on a thread of its own. Unavailable when the port is taken.
  // `engine` may be null until Attach.
  static absl::StatusOr<std::unique_ptr<OpenAiServer>> Start(ServingEngine* engine,
                                                             const OpenAiServerOptions& options);
  ~OpenAiServer();  // Stop()

  // The engine is ready: serve it from now on (once; it must outlive the server).
  void Attach(ServingEngine* engine);
  // Before Attach: the ranks' load progress, for /health and /metrics.
  void SetLoading(std::vector<RankLoadBytes> loads);

  int port() const { return port_; }
  // Stops accepting and ends the open streams (their requests are cancelled). Idempotent.
  void Stop();

 private:
  OpenAiServer(ServingEngine* engine, const OpenAiServerOptions& options,
               std::unique_ptr<httplib::Server> http);
  void Routes();
  // Submits the request's choices and answers with them, whole or streamed, in the completions
  // or the chat API's shape.
  void Generate(const CompletionRequest& request, bool chat, httplib::Response& res);
  // The model directory's chat template, loaded once (its error too).
  absl::StatusOr<std::shared_ptr<const ModelChatTemplate>> ChatTemplateOf(const std::string& dir);
  // Set once Attach ran; the routes past the pre-routing check only run then.
  ServingEngine* engine() const { return engine_.load(); }
  std::vector<RankLoadBytes> Loading() const;

  std::atomic<ServingEngine*> engine_;
  const OpenAiServerOptions options_;
  std::unique_ptr<httplib::Server> http_;
  std::thread thread_;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int64_t> next_id_{0};
  mutable std::mutex loading_mu_;
  std::vector<RankLoadBytes> loading_;
  std::mutex chat_mu_;
  std::map<std::string, absl::StatusOr<std::shared_ptr<const ModelChatTemplate>>> chat_templates_;
};

}  // namespace loom::openai

#endif  // LOOM_CONTROLLER_OPENAI_OPENAI_SERVER_H_
