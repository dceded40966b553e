#include "controller/openai/openai_server.h"

#include <httplib.h>

#include <chrono>
#include <condition_variable>
#include <ctime>
#include <mutex>
#include <tuple>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status.h"
#include "controller/openai/api_error.h"
#include "controller/openai/chat_request.h"
#include "controller/openai/completion_request.h"
#include "controller/openai/metrics_text.h"

namespace loom::openai {
namespace {

using nlohmann::json;

constexpr auto kPoll = std::chrono::milliseconds(50);

void Reply(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(body.dump(), "application/json");
}

void ReplyError(httplib::Response& res, const absl::Status& status) {
  Reply(res, HttpStatusOf(status), ErrorBody(status));
}

absl::StatusOr<json> ParseBody(const httplib::Request& req) {
  json body = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded()) return BadParam("", "the request body is not valid JSON");
  return body;
}

std::string Fingerprint(uint64_t version) { return absl::StrCat("loom-wv", version); }

// The choices of one completion request: n per prompt, each its own engine request.
struct Choices {
  std::vector<std::shared_ptr<RequestStream>> streams;
  std::vector<bool> done;
  std::vector<std::string> text;
  std::vector<std::string> finish;
  std::vector<json> logprobs;  // completions' {tokens, token_logprobs, top_logprobs, ...}
  int64_t prompt_tokens = 0, completion_tokens = 0;
  uint64_t weight_version = 0;
  absl::Status error;
  // Woken by every stream's listener.
  std::mutex mu;
  std::condition_variable cv;
  bool ready = false;

  void CancelAll() {
    for (auto& s : streams) s->Cancel();
  }
  ~Choices() {
    for (auto& s : streams) s->SetListener(nullptr);
    CancelAll();
  }
};

// A token as the logprobs show it: its text, or its id without a tokenizer.
std::string TokenText(const tokenizer::Tokenizer* tok, int32_t id) {
  if (tok == nullptr) return absl::StrCat(id);
  absl::StatusOr<std::string> s = tok->Decode(std::vector<int32_t>{id}, false);
  return s.ok() ? *s : absl::StrCat(id);
}

// Adds one delta of choice `i` to the completion's logprobs (tokens as text).
void AddLogprobs(const GenerateDelta& delta, const tokenizer::Tokenizer* tok, json& out) {
  if (delta.logprobs.empty()) return;
  if (!out.is_object()) {
    out = {{"tokens", json::array()}, {"token_logprobs", json::array()},
           {"top_logprobs", json::array()}, {"text_offset", json::array()}};
  }
  for (size_t t = 0; t < delta.token_ids.size() && t < delta.logprobs.size(); ++t) {
    const TokenLogprobs& lp = delta.logprobs[t];
    out["tokens"].push_back(TokenText(tok, delta.token_ids[t]));
    out["token_logprobs"].push_back(lp.logprob);
    json top = json::object();
    for (size_t k = 0; k < lp.top_ids.size(); ++k) top[TokenText(tok, lp.top_ids[k])] = lp.top_logprobs[k];
    out["top_logprobs"].push_back(std::move(top));
  }
}

// The chat API's logprobs: {"content": [{"token", "logprob", "top_logprobs": [...]}]}.
void AddChatLogprobs(const GenerateDelta& delta, const tokenizer::Tokenizer* tok, json& out) {
  if (delta.logprobs.empty()) return;
  if (!out.is_object()) out = {{"content", json::array()}};
  for (size_t t = 0; t < delta.token_ids.size() && t < delta.logprobs.size(); ++t) {
    const TokenLogprobs& lp = delta.logprobs[t];
    json top = json::array();
    for (size_t k = 0; k < lp.top_ids.size(); ++k) {
      top.push_back({{"token", TokenText(tok, lp.top_ids[k])}, {"logprob", lp.top_logprobs[k]}});
    }
    out["content"].push_back({{"token", TokenText(tok, delta.token_ids[t])},
                              {"logprob", lp.logprob},
                              {"top_logprobs", std::move(top)}});
  }
}

// Takes what each stream has; true once every choice is done (or the first error).
bool Drain(Choices& c, const tokenizer::Tokenizer* tok, bool chat,
           const std::function<void(size_t, const GenerateDelta&)>& on_delta) {
  bool all = true;
  for (size_t i = 0; i < c.streams.size(); ++i) {
    if (c.done[i]) continue;
    GenerateDelta delta;
    while (!c.done[i] && c.streams[i]->Next(&delta, std::chrono::milliseconds(0))) {
      if (!delta.error.ok()) {
        c.error = delta.error;
        return true;
      }
      c.text[i] += delta.text;
      if (delta.weight_version != 0) c.weight_version = delta.weight_version;
      if (chat) {
        AddChatLogprobs(delta, tok, c.logprobs[i]);
      } else {
        AddLogprobs(delta, tok, c.logprobs[i]);
      }
      if (delta.done) {
        c.done[i] = true;
        c.finish[i] = delta.finish_reason == FinishReason::kLength ? "length" : "stop";
        c.prompt_tokens += delta.prompt_tokens;
        c.completion_tokens += delta.completion_tokens;
      }
      if (on_delta) on_delta(i, delta);
      delta = GenerateDelta();
    }
    all = all && c.done[i];
  }
  return all;
}

void WaitForOutput(Choices& c) {
  std::unique_lock<std::mutex> lock(c.mu);
  c.cv.wait_for(lock, kPoll, [&c] { return c.ready; });
  c.ready = false;
}

}  // namespace

OpenAiServer::OpenAiServer(ServingEngine* engine, const OpenAiServerOptions& options,
                           std::unique_ptr<httplib::Server> http)
    : engine_(engine), options_(options), http_(std::move(http)) {}

void OpenAiServer::Attach(ServingEngine* engine) { engine_.store(engine); }

void OpenAiServer::SetLoading(std::vector<RankLoadBytes> loads) {
  std::lock_guard<std::mutex> lock(loading_mu_);
  loading_ = std::move(loads);
}

std::vector<RankLoadBytes> OpenAiServer::Loading() const {
  std::lock_guard<std::mutex> lock(loading_mu_);
  return loading_;
}

OpenAiServer::~OpenAiServer() { Stop(); }

absl::StatusOr<std::unique_ptr<OpenAiServer>> OpenAiServer::Start(
    ServingEngine* engine, const OpenAiServerOptions& options) {
  std::unique_ptr<httplib::Server> plain_or_tls;
  if (options.tls_cert_path.empty() != options.tls_key_path.empty()) {
    return absl::InvalidArgumentError("HTTPS needs both a certificate and its private key");
  }
  if (options.tls_cert_path.empty()) {
    plain_or_tls = std::make_unique<httplib::Server>();
  } else {
#ifdef CPPHTTPLIB_OPENSSL_SUPPORT
    auto tls = std::make_unique<httplib::SSLServer>(options.tls_cert_path.c_str(),
                                                    options.tls_key_path.c_str());
    if (!tls->is_valid()) {
      return absl::InvalidArgumentError(
          absl::StrCat("HTTPS: cannot use the certificate ", options.tls_cert_path,
                       " with the key ", options.tls_key_path,
                       " (unreadable, not PEM, or not a pair)"));
    }
    plain_or_tls = std::move(tls);
#else
    return absl::UnimplementedError(
        "this build's HTTP library has no TLS: serve HTTPS through a reverse proxy "
        "(docs/security.md)");
#endif
  }
  std::unique_ptr<OpenAiServer> server(new OpenAiServer(engine, options, std::move(plain_or_tls)));
  httplib::Server& http = *server->http_;
  const int threads = std::max(1, options.threads);
  http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  http.set_payload_max_length(options.max_body_bytes);
  http.set_read_timeout(30, 0);
  http.set_write_timeout(30, 0);
  // An SSE event is a small write: without TCP_NODELAY it waits for the client's delayed ACK
  // (up to 40 ms a token, measured by loom-bench-serving). Keep-alive connections stay up for
  // as many requests as clients send (httplib closes them after 5 by default, and pooled
  // clients then reconnect all at once into its listen backlog of 5).
  http.set_tcp_nodelay(true);
  http.set_keep_alive_max_count(100000);
  server->Routes();
  int port = options.port;
  if (port == 0) {
    port = http.bind_to_any_port(options.host);
  } else if (!http.bind_to_port(options.host, port)) {
    port = -1;
  }
  if (port <= 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen for HTTP on ", options.host, ":",
                                               options.port, " (in use? --http-port 0 turns the "
                                               "OpenAI API off)"));
  }
  server->port_ = port;
  server->thread_ = std::thread([s = server.get()] { s->http_->listen_after_bind(); });
  return server;
}

void OpenAiServer::Stop() {
  if (stopping_.exchange(true)) return;
  http_->stop();
  if (thread_.joinable()) thread_.join();
}

void OpenAiServer::Routes() {
  httplib::Server& http = *http_;
  const std::string name = options_.model_name;

  // Errors httplib raises itself (unknown path, body too large) in OpenAI's shape.
  http.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    std::string message = res.status == 404 ? absl::StrCat("no route ", req.method, " ", req.path)
                          : res.status == 413 ? "the request body is over the server's limit"
                                              : absl::StrCat("HTTP ", res.status);
    res.set_content(ErrorBody(res.status, message).dump(), "application/json");
  });
  http.set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr e) {
        std::string what = "internal error";
        try {
          if (e) std::rethrow_exception(e);
        } catch (const std::exception& ex) {
          what = ex.what();
        } catch (...) {
        }
        Reply(res, 500, ErrorBody(500, what));
      });

  // Until the engine is attached only these answer; the rest is 503 (the weights are loading).
  // A draining server refuses new generations whatever they ask.
  http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    // /health stays open: load balancers and orchestrators probe it without a key.
    const bool open =
        req.path == "/health" || (req.path == "/metrics" && !options_.metrics_need_key);
    if (!open && options_.keys.any()) {
      absl::Status allowed =
          CheckAuthorization(options_.keys, req.get_header_value("Authorization"), Access::kClient);
      if (!allowed.ok()) {
        res.set_header("WWW-Authenticate", "Bearer");
        Reply(res, HttpStatusOf(allowed), ErrorBody(allowed));
        return httplib::Server::HandlerResponse::Handled;
      }
    }
    if (req.path == "/health" || req.path == "/metrics" || req.path == "/version") {
      return httplib::Server::HandlerResponse::Unhandled;
    }
    ServingEngine* engine = engine_.load();
    if (engine == nullptr) {
      Reply(res, 503, ErrorBody(503, "the server is loading its weights; GET /health says when "
                                     "it serves"));
      return httplib::Server::HandlerResponse::Handled;
    }
    if (engine->draining() && absl::StartsWith(req.path, "/v1/")) {
      Reply(res, 503, ErrorBody(503, "the server is draining: it finishes the requests it has "
                                     "and takes no new ones"));
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });

  http.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    ServingEngine* engine = engine_.load();
    if (engine == nullptr) {
      json ranks = json::array();
      for (const RankLoadBytes& l : Loading()) {
        ranks.push_back({{"rank", l.rank}, {"bytes_done", l.done}, {"bytes_total", l.total}});
      }
      return Reply(res, 503, {{"status", "loading"}, {"ranks", std::move(ranks)}});
    }
    const EngineStatus s = engine->Status();
    bool dummy = false;
    for (const RankState& r : s.ranks) {
      if (r.weights.is_object()) {
        dummy = dummy || r.weights.value("serving", json::object()).value("dummy", false);
      }
    }
    const char* state = !s.broken.ok()      ? "failed"
                        : s.healing           ? "healing"
                        : s.draining          ? "draining"
                        : s.sleep_level > 0   ? "asleep"
                                              : "ok";
    json body = {{"status", state},
                 {"weight_version", s.serving_weight_version},
                 {"dummy_weights", dummy}};
    if (!s.broken.ok()) body["error"] = std::string(s.broken.message());
    if (s.sleep_level > 0) body["sleep_level"] = s.sleep_level;
    if (s.restarts > 0) body["restarts"] = s.restarts;
    if (!s.last_failure.empty()) body["last_failure"] = s.last_failure;
    Reply(res, std::string(state) == "ok" ? 200 : 503, body);
  });

  http.Get("/version", [](const httplib::Request&, httplib::Response& res) {
    Reply(res, 200, {{"version", "loom"}, {"api", "openai-compatible"}});
  });

  http.Get("/v1/models", [this, name](const httplib::Request&, httplib::Response& res) {
    const EngineStatus s = engine()->Status();
    Reply(res, 200,
          {{"object", "list"},
           {"data",
            {{{"id", name},
              {"object", "model"},
              {"created", static_cast<int64_t>(std::time(nullptr))},
              {"owned_by", "loom"},
              {"max_model_len", s.max_model_len},
              {"weight_version", s.serving_weight_version}}}}});
  });

  http.Post("/tokenize", [this](const httplib::Request& req, httplib::Response& res) {
    absl::StatusOr<json> body = ParseBody(req);
    if (!body.ok()) return ReplyError(res, body.status());
    const auto model = engine()->served_model();
    if (model == nullptr || model->tokenizer() == nullptr) {
      return ReplyError(res, absl::FailedPreconditionError("the model has no tokenizer"));
    }
    const json* prompt = body->is_object() && body->contains("prompt") ? &(*body)["prompt"] : nullptr;
    if (prompt == nullptr || !prompt->is_string()) {
      return ReplyError(res, BadParam("prompt", "prompt: required, a string"));
    }
    const bool special = body->value("add_special_tokens", true);
    absl::StatusOr<std::vector<int32_t>> ids =
        model->tokenizer()->Encode(prompt->get<std::string>(), special);
    if (!ids.ok()) return ReplyError(res, BadParam("prompt", std::string(ids.status().message())));
    Reply(res, 200, {{"tokens", *ids}, {"count", ids->size()},
                     {"max_model_len", engine()->Status().max_model_len}});
  });

  http.Post("/detokenize", [this](const httplib::Request& req, httplib::Response& res) {
    absl::StatusOr<json> body = ParseBody(req);
    if (!body.ok()) return ReplyError(res, body.status());
    const auto model = engine()->served_model();
    if (model == nullptr || model->tokenizer() == nullptr) {
      return ReplyError(res, absl::FailedPreconditionError("the model has no tokenizer"));
    }
    std::vector<int32_t> ids;
    const json* tokens = body->is_object() && body->contains("tokens") ? &(*body)["tokens"] : nullptr;
    if (tokens == nullptr || !tokens->is_array()) {
      return ReplyError(res, BadParam("tokens", "tokens: required, a list of token ids"));
    }
    for (const json& t : *tokens) {
      if (!t.is_number_integer() || t.get<int64_t>() < 0 ||
          t.get<int64_t>() >= engine()->model_config().vocab_size) {
        return ReplyError(res, BadParam("tokens", "tokens: ids must be within the vocabulary"));
      }
      ids.push_back(t.get<int32_t>());
    }
    absl::StatusOr<std::string> text = model->tokenizer()->Decode(ids, false);
    if (!text.ok()) return ReplyError(res, BadParam("tokens", std::string(text.status().message())));
    Reply(res, 200, {{"prompt", *text}});
  });

  http.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    ServingEngine* engine = engine_.load();
    res.set_content(engine != nullptr ? MetricsText(engine->Status())
                                      : LoadingMetricsText(Loading()),
                    "text/plain; version=0.0.4");
  });

  http.Post("/v1/chat/completions", [this, name](const httplib::Request& req,
                                                 httplib::Response& res) {
    nlohmann::ordered_json body = nlohmann::ordered_json::parse(req.body, nullptr, false);
    if (body.is_discarded()) return ReplyError(res, BadParam("", "the request body is not valid JSON"));
    const auto model = engine()->served_model();
    if (model == nullptr || model->tokenizer() == nullptr) {
      return ReplyError(res, absl::FailedPreconditionError("the model has no tokenizer"));
    }
    absl::StatusOr<std::shared_ptr<const ModelChatTemplate>> chat = ChatTemplateOf(model->dir());
    if (!chat.ok()) {
      // No template, or one this server cannot render: the client's request is not at fault.
      const bool missing = chat.status().code() == absl::StatusCode::kFailedPrecondition;
      return Reply(res, missing ? 400 : 500, ErrorBody(missing ? 400 : 500,
                                                       std::string(chat.status().message())));
    }
    absl::StatusOr<CompletionRequest> request =
        ParseChatRequest(body, name, **chat, *model->tokenizer());
    if (!request.ok()) return ReplyError(res, request.status());
    Generate(*request, /*chat=*/true, res);
  });

  http.Post("/v1/completions", [this, name](const httplib::Request& req,
                                            httplib::Response& res) {
    absl::StatusOr<json> body = ParseBody(req);
    if (!body.ok()) return ReplyError(res, body.status());
    absl::StatusOr<CompletionRequest> request = ParseCompletionRequest(*body, name);
    if (!request.ok()) return ReplyError(res, request.status());
    Generate(*request, /*chat=*/false, res);
  });
}

absl::StatusOr<std::shared_ptr<const ModelChatTemplate>> OpenAiServer::ChatTemplateOf(
    const std::string& dir) {
  std::lock_guard<std::mutex> lock(chat_mu_);
  auto it = chat_templates_.find(dir);
  if (it == chat_templates_.end()) it = chat_templates_.emplace(dir, LoadChatTemplate(dir)).first;
  return it->second;
}

void OpenAiServer::Generate(const CompletionRequest& request, bool chat,
                            httplib::Response& res) {
  const std::string name = options_.model_name;
  auto choices = std::make_shared<Choices>();
  for (const ServingRequest& prompt : request.prompts) {
    absl::StatusOr<std::vector<std::shared_ptr<RequestStream>>> streams =
        engine()->SubmitChoices(prompt, request.n);
    if (!streams.ok()) return ReplyError(res, streams.status());  // ~Choices cancels the rest
    for (std::shared_ptr<RequestStream>& stream : *streams) {
      stream->SetListener([c = choices.get()] {
        std::lock_guard<std::mutex> lock(c->mu);
        c->ready = true;
        c->cv.notify_one();
      });
      choices->streams.push_back(std::move(stream));
    }
  }
  const size_t count = choices->streams.size();
  choices->done.assign(count, false);
  choices->text.assign(count, "");
  choices->finish.assign(count, "");
  choices->logprobs.assign(count, json());
  const auto model = engine()->served_model();
  const tokenizer::Tokenizer* tok = model ? model->tokenizer().get() : nullptr;
  const std::string id = absl::StrCat(chat ? "chatcmpl-" : "cmpl-", next_id_.fetch_add(1));
  const int64_t created = static_cast<int64_t>(std::time(nullptr));
  const std::string object = chat ? "chat.completion" : "text_completion";
  const std::string chunk_object = chat ? "chat.completion.chunk" : "text_completion";
  auto usage = [choices] {
    return json{{"prompt_tokens", choices->prompt_tokens},
                {"completion_tokens", choices->completion_tokens},
                {"total_tokens", choices->prompt_tokens + choices->completion_tokens}};
  };
  // One response or chunk: the fields every one carries, then its choices.
  auto envelope = [=](const std::string& kind, uint64_t version, json list) {
    return json{{"id", id},
                {"object", kind},
                {"created", created},
                {"model", name},
                {"system_fingerprint", Fingerprint(version)},
                {"weight_version", version},
                {"choices", std::move(list)}};
  };

  if (!request.stream) {
    while (!Drain(*choices, tok, chat, nullptr)) {
      if (stopping_) return;  // ~Choices cancels
      WaitForOutput(*choices);
    }
    if (!choices->error.ok()) return ReplyError(res, choices->error);
    json list = json::array();
    for (size_t i = 0; i < count; ++i) {
      json choice = {{"index", i}};
      if (chat) {
        choice["message"] = {{"role", "assistant"}, {"content", choices->text[i]}};
      } else {
        choice["text"] = choices->text[i];
      }
      choice["logprobs"] = choices->logprobs[i];
      choice["finish_reason"] = choices->finish[i];
      list.push_back(std::move(choice));
    }
    json body = envelope(object, choices->weight_version, std::move(list));
    body["usage"] = usage();
    return Reply(res, 200, body);
  }

  const bool include_usage = request.include_usage;
  auto started = std::make_shared<std::vector<bool>>(count, false);  // chat: role sent
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider(
      "text/event-stream",
      [this, choices, tok, chat, chunk_object, include_usage, usage, envelope, started](
          size_t, httplib::DataSink& sink) {
        auto send = [&sink](const json& chunk) {
          const std::string event = absl::StrCat("data: ", chunk.dump(), "\n\n");
          return sink.write(event.data(), event.size());
        };
        bool ok = true;
        const bool finished = Drain(*choices, tok, chat, [&](size_t i, const GenerateDelta& d) {
          json lp = nullptr;
          if (!d.logprobs.empty()) {
            if (chat) {
              AddChatLogprobs(d, tok, lp);
            } else {
              AddLogprobs(d, tok, lp);
            }
          }
          json choice = {{"index", i}};
          if (chat) {
            json delta = {{"content", d.text}};
            if (!(*started)[i]) delta["role"] = "assistant";
            (*started)[i] = true;
            choice["delta"] = std::move(delta);
          } else {
            choice["text"] = d.text;
          }
          choice["logprobs"] = lp;
          choice["finish_reason"] = d.done ? json(choices->finish[i]) : json();
          ok = ok && send(envelope(chunk_object, d.weight_version, json::array({choice})));
        });
        // A failed write is a client gone (is_writable() is not: it also says false while
        // a slow reader's socket buffer is full).
        if (!ok || stopping_) {
          choices->CancelAll();  // the client went away: its sequences stop
          return false;
        }
        if (!finished) {
          WaitForOutput(*choices);
          return true;
        }
        if (!choices->error.ok()) {
          send(ErrorBody(choices->error));
        } else if (include_usage) {
          json last = envelope(chunk_object, choices->weight_version, json::array());
          last["usage"] = usage();
          send(last);
        }
        const std::string done = "data: [DONE]\n\n";
        sink.write(done.data(), done.size());
        sink.done();
        return true;
      });
}

}  // namespace loom::openai
