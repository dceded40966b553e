// loom-bench-serving: what streaming over the OpenAI-compatible HTTP API costs per token against
// the Loom gRPC API, on one `loom serve` (the same engine behind both), the same model and the
// same prompts. Per concurrency C it runs C greedy streams of --new-tokens tokens (ignore_eos)
// over each protocol in turn, --repeats times, the order swapped every repeat so drift falls on
// both, and prints a Markdown table of medians over the repeats with HTTP ÷ gRPC ratios.
//
// Greedy decoding makes the outputs comparable. A warm-up at each concurrency records each
// prompt's token ids over gRPC; every later gRPC stream must repeat them, and every HTTP stream,
// which carries text, not ids, their text. The warm-up also asks HTTP for logprobs, whose
// `tokens` give each token's text (its id without a tokenizer), and checks them one by one
// against the gRPC ids. Any difference ends the run with an error.
#include <grpcpp/grpcpp.h>
#include <httplib.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <latch>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/flags.h"
#include "common/model_config.h"
#include "common/status.h"
#include "controller/tokenizer/tokenizer.h"
#include "loom/v1/loom.grpc.pb.h"
#include "tools/bench_stats.h"
#include "tools/serve_child.h"

namespace loom::cli {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using nlohmann::json;

constexpr char kUsage[] =
    "usage: loom-bench-serving [--model DIR] [--concurrency 1,16] [--new-tokens 128] [options]\n"
    "       loom-bench-serving --address HOST:PORT --http-address HOST:PORT [options]\n\n"
    "Streams the same greedy requests over gRPC (Generate) and HTTP (POST /v1/completions with\n"
    "stream: true) of one `loom serve`, interleaved, and prints per concurrency a Markdown table\n"
    "of tokens/s, time per output token, inter-token gaps and time to first token, medians over\n"
    "--repeats, with HTTP ÷ gRPC ratios. Starts `loom serve` (beside this tool) on --model unless\n"
    "given the addresses of a running one. Fails when the protocols' outputs differ.\n";

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

std::string CpuModel() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);) {
    if (absl::StartsWith(line, "model name")) return line.substr(line.find(':') + 2);
  }
  return "unknown CPU";
}

struct Settings {
  int64_t new_tokens = 128;
  std::string http_model;  // the name /v1/models gives
  std::chrono::seconds deadline{600};
};

// What one streamed request looked like from the client: when it was sent, when each message
// carrying tokens arrived, and what it carried.
struct Trace {
  Clock::time_point sent;
  std::vector<Clock::time_point> arrivals;
  std::vector<int32_t> ids;              // gRPC only
  std::vector<std::string> token_texts;  // HTTP with logprobs only
  std::string text;
  int64_t completion_tokens = 0;  // what the server's usage says
  int resent = 0;                 // HTTP: sent again after getting no response
  std::string error;              // empty when the stream ended well
};

void GrpcStream(loom::v1::Loom::Stub& stub, const std::vector<int32_t>& prompt, const Settings& s,
                Trace& t) {
  loom::v1::GenerateRequest request;
  request.mutable_prompt_ids()->Add(prompt.begin(), prompt.end());
  request.set_max_tokens(static_cast<int32_t>(s.new_tokens));
  request.set_temperature(0);
  request.set_ignore_eos(true);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + s.deadline);
  t.sent = Clock::now();
  auto reader = stub.Generate(&context, request);
  loom::v1::GenerateResponse response;
  while (reader->Read(&response)) {
    if (response.token_ids_size() > 0) t.arrivals.push_back(Clock::now());
    t.ids.insert(t.ids.end(), response.token_ids().begin(), response.token_ids().end());
    t.text += response.text();
    if (response.has_usage()) t.completion_tokens = response.usage().completion_tokens();
  }
  const grpc::Status status = reader->Finish();
  if (!status.ok())
    t.error = absl::StrCat("gRPC ", status.error_code(), ": ", status.error_message());
}

// One SSE event's payload: its chunk's text, logprobs tokens and usage go into `t`.
absl::Status TakeEvent(const std::string& data, Trace& t, Clock::time_point at) {
  const json chunk = json::parse(data, nullptr, /*allow_exceptions=*/false);
  if (!chunk.is_object()) return absl::DataLossError(absl::StrCat("not a JSON chunk: ", data));
  if (chunk.contains("error")) return absl::UnknownError(chunk["error"].dump());
  if (chunk.contains("usage") && chunk["usage"].is_object()) {
    t.completion_tokens = chunk["usage"].value("completion_tokens", int64_t{0});
  }
  for (const json& choice : chunk.value("choices", json::array())) {
    t.arrivals.push_back(at);
    t.text += choice.value("text", "");
    const auto lp = choice.find("logprobs");
    if (lp != choice.end() && lp->is_object()) {
      for (const json& token : lp->value("tokens", json::array())) {
        t.token_texts.push_back(token.get<std::string>());
      }
    }
  }
  return absl::OkStatus();
}

void HttpStream(httplib::Client& client, const std::vector<int32_t>& prompt, const Settings& s,
                bool logprobs, Trace& t) {
  json body = {{"model", s.http_model},
               {"prompt", prompt},
               {"max_tokens", s.new_tokens},
               {"temperature", 0},
               {"ignore_eos", true},
               {"stream", true},
               {"stream_options", {{"include_usage", true}}}};
  if (logprobs) body["logprobs"] = 0;
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/completions";
  req.set_header("Content-Type", "application/json");
  req.body = body.dump();
  std::string buffer;
  bool done = false;
  absl::Status parse = absl::OkStatus();
  // Events are split wherever TCP split them; each is taken once its blank line has come.
  req.content_receiver = [&](const char* data, size_t size, uint64_t, uint64_t) {
    const Clock::time_point at = Clock::now();
    buffer.append(data, size);
    for (size_t end; (end = buffer.find("\n\n")) != std::string::npos;) {
      const std::string event = buffer.substr(0, end);
      buffer.erase(0, end + 2);
      if (!absl::StartsWith(event, "data: ")) continue;
      if (event == "data: [DONE]") {
        done = true;
      } else if (parse.ok()) {
        parse = TakeEvent(event.substr(6), t, at);
      }
    }
    return true;
  };
  t.sent = Clock::now();
  httplib::Result r = client.send(req);
  // A burst of connects can outrun the server's listen backlog (5 in cpp-httplib 0.11), which
  // leaves a request without any response; clients such as OpenAI's SDK send it again.
  if (!r && buffer.empty() && t.arrivals.empty()) {
    ++t.resent;
    r = client.send(req);
  }
  if (!r) {
    t.error = absl::StrCat("HTTP: no response (", httplib::to_string(r.error()), ")");
  } else if (r->status != 200) {
    t.error = absl::StrCat("HTTP ", r->status, ": ", buffer);
  } else if (!parse.ok()) {
    t.error = absl::StrCat("HTTP stream: ", parse.message());
  } else if (!done) {
    t.error = "HTTP stream ended without data: [DONE]";
  }
}

enum class Protocol { kGrpc, kHttp };

struct Clients {
  std::unique_ptr<loom::v1::Loom::Stub> stub;  // one channel, its streams multiplexed
  // One keep-alive connection per concurrent stream, as pooling HTTP/1.1 clients hold them,
  // with TCP_NODELAY as curl, Go and gRPC set it: httplib writes a request's headers and body
  // apart, and Nagle would hold the body back until the server's delayed ACK (40 ms).
  std::vector<std::unique_ptr<httplib::Client>> http;
};

// C streams at once, request i on prompt i, all released together.
std::vector<Trace> RunOnce(Clients& clients, Protocol protocol, const Settings& s,
                           const std::vector<std::vector<int32_t>>& prompts, size_t c,
                           bool logprobs) {
  std::vector<Trace> traces(c);
  std::latch go(static_cast<std::ptrdiff_t>(c));
  std::vector<std::thread> threads;
  for (size_t i = 0; i < c; ++i) {
    threads.emplace_back([&, i] {
      go.arrive_and_wait();
      if (protocol == Protocol::kGrpc) {
        GrpcStream(*clients.stub, prompts[i], s, traces[i]);
      } else {
        HttpStream(*clients.http[i], prompts[i], s, logprobs, traces[i]);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  return traces;
}

// The reference output of each prompt: the warm-up's gRPC ids and text.
struct Reference {
  std::vector<int32_t> ids;
  std::string text;
};

// Fails, naming the request and the first difference, unless every trace carries its prompt's
// reference output.
absl::Status Check(const std::vector<Trace>& traces, const std::vector<Reference>& refs,
                   Protocol protocol, const Settings& s, const std::string& when) {
  const char* name = protocol == Protocol::kGrpc ? "gRPC" : "HTTP";
  for (size_t i = 0; i < traces.size(); ++i) {
    const Trace& t = traces[i];
    const std::string what = absl::StrCat(when, ", ", name, " request ", i, ": ");
    if (!t.error.empty()) return absl::InternalError(what + t.error);
    if (t.completion_tokens != s.new_tokens) {
      return absl::InternalError(
          absl::StrCat(what, "usage says ", t.completion_tokens, " tokens, not ", s.new_tokens));
    }
    if (protocol == Protocol::kGrpc && t.ids != refs[i].ids) {
      size_t k = 0;
      while (k < t.ids.size() && k < refs[i].ids.size() && t.ids[k] == refs[i].ids[k]) ++k;
      return absl::InternalError(absl::StrCat(what, "token ids differ from the reference at ",
                                              "position ", k, " (greedy decoding should repeat)"));
    }
    if (t.text != refs[i].text) {
      return absl::InternalError(absl::StrCat(what, "the text differs from the warm-up's over ",
                                              "gRPC: \"", t.text, "\" vs \"", refs[i].text, "\""));
    }
  }
  return absl::OkStatus();
}

// HTTP's logprobs tokens are the server's Decode of each id alone (the id without a
// tokenizer): decoding the gRPC ids the same way here must give the same strings.
absl::Status CheckTokenTexts(const std::vector<Trace>& http, const std::vector<Reference>& refs,
                             const tokenizer::Tokenizer* tok) {
  for (size_t i = 0; i < http.size(); ++i) {
    if (http[i].token_texts.size() != refs[i].ids.size()) {
      return absl::InternalError(absl::StrCat("warm-up, HTTP request ", i, ": ",
                                              http[i].token_texts.size(), " logprobs tokens for ",
                                              refs[i].ids.size(), " gRPC ids"));
    }
    for (size_t k = 0; k < refs[i].ids.size(); ++k) {
      const int32_t id = refs[i].ids[k];
      absl::StatusOr<std::string> text = tok == nullptr
                                             ? absl::StatusOr<std::string>(absl::StrCat(id))
                                             : tok->Decode(std::vector<int32_t>{id}, false);
      const std::string expected = text.ok() ? *text : absl::StrCat(id);
      if (http[i].token_texts[k] != expected) {
        return absl::InternalError(absl::StrCat("warm-up, HTTP request ", i, ": token ", k,
                                                " is \"", http[i].token_texts[k], "\", gRPC's id ",
                                                id, " is \"", expected, "\""));
      }
    }
  }
  return absl::OkStatus();
}

// One run's figures, as the client measured them.
struct RunStats {
  double tokens_per_s = 0;  // all streams' tokens over the run's wall time
  double tpot_ms = 0;       // time per output token after the first, median over requests
  double gap_p50_ms = 0, gap_p99_ms = 0;  // between messages, pooled over requests
  double ttft_ms = 0;                     // median over requests
  double messages = 0;                    // per request, mean: fewer than tokens = coalesced
  int resent = 0;
};

RunStats Summarize(const std::vector<Trace>& traces, int64_t new_tokens) {
  RunStats r;
  std::vector<double> gaps, tpot, ttft;
  Clock::time_point first = traces.front().sent, last = first;
  for (const Trace& t : traces) {
    first = std::min(first, t.sent);
    last = std::max(last, t.arrivals.back());
    ttft.push_back(Ms(t.arrivals.front() - t.sent));
    tpot.push_back(Ms(t.arrivals.back() - t.arrivals.front()) /
                   static_cast<double>(new_tokens - 1));
    for (size_t k = 1; k < t.arrivals.size(); ++k)
      gaps.push_back(Ms(t.arrivals[k] - t.arrivals[k - 1]));
    r.messages += static_cast<double>(t.arrivals.size()) / static_cast<double>(traces.size());
    r.resent += t.resent;
  }
  r.tokens_per_s = 1e3 * static_cast<double>(new_tokens * traces.size()) / Ms(last - first);
  r.tpot_ms = Median(tpot);
  r.gap_p50_ms = Median(gaps);
  r.gap_p99_ms = Percentile(gaps, 0.99);
  r.ttft_ms = Median(ttft);
  return r;
}

void PrintTable(size_t c, const std::vector<RunStats>& grpc, const std::vector<RunStats>& http,
                const Settings& s, size_t prompt_len) {
  std::printf(
      "\n### %zu concurrent stream%s × %lld new tokens (prompts of %zu ids), %zu repeats\n\n", c,
      c == 1 ? "" : "s", static_cast<long long>(s.new_tokens), prompt_len, grpc.size());
  std::printf("| median over repeats | gRPC | HTTP | HTTP ÷ gRPC (min–max) |\n|---|---|---|---|\n");
  struct Row {
    const char* name;
    double RunStats::*field;
    bool time;  // a time: the ratio is HTTP's over gRPC's; a rate: gRPC's over HTTP's
  };
  const Row rows[] = {
      {"tokens/s, all streams (ratio: time per token)", &RunStats::tokens_per_s, false},
      {"time per output token, ms", &RunStats::tpot_ms, true},
      {"inter-token gap p50, ms", &RunStats::gap_p50_ms, true},
      {"inter-token gap p99, ms", &RunStats::gap_p99_ms, true},
      {"time to first token, ms", &RunStats::ttft_ms, true},
      {"messages per request", &RunStats::messages, true},
  };
  for (const Row& row : rows) {
    std::vector<double> g, h, ratio;
    // Each repeat's pair ran back to back, so their ratio cancels what drifts between repeats.
    for (size_t r = 0; r < grpc.size(); ++r) {
      g.push_back(grpc[r].*row.field);
      h.push_back(http[r].*row.field);
      const double num = row.time ? h.back() : g.back(), den = row.time ? g.back() : h.back();
      ratio.push_back(den > 0 ? num / den : 0);
    }
    std::printf("| %s | %.4g | %.4g | %.3f (%.3f–%.3f) |\n", row.name, Median(g), Median(h),
                Median(ratio), *std::min_element(ratio.begin(), ratio.end()),
                *std::max_element(ratio.begin(), ratio.end()));
  }
  std::vector<double> per_token;
  for (size_t r = 0; r < grpc.size(); ++r) {
    per_token.push_back(grpc[r].tokens_per_s / std::max(http[r].tokens_per_s, 1e-9));
  }
  const double ratio = Median(per_token);
  std::printf("\nPer token, HTTP takes %.3f× gRPC's time (%+.1f %%; the goal is at most +5 %%).\n",
              ratio, 100 * (ratio - 1));
  int resent = 0;
  for (const RunStats& r : http) resent += r.resent;
  if (resent > 0) {
    std::printf("\n%d of %zu HTTP requests got no response and were sent again.\n", resent,
                c * http.size());
  }
}

// Splits "host:port".
absl::StatusOr<std::pair<std::string, int>> HostPort(const std::string& address,
                                                     const std::string& flag) {
  const size_t colon = address.rfind(':');
  int port = 0;
  if (colon == std::string::npos || !absl::SimpleAtoi(address.substr(colon + 1), &port) ||
      port <= 0 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, ": expected HOST:PORT, not \"", address, "\""));
  }
  return std::make_pair(address.substr(0, colon), port);
}

absl::Status Run(const Flags& flags) {
  if (!flags.positional().empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("unexpected argument \"", flags.positional().front(), "\" (see --help)"));
  }
  Settings s;
  LOOM_ASSIGN_OR_RETURN(std::vector<int64_t> concurrency,
                        ParseIntList(flags.String("concurrency", "1,16"), "--concurrency"));
  LOOM_ASSIGN_OR_RETURN(s.new_tokens, flags.Int("new-tokens", 128));
  LOOM_ASSIGN_OR_RETURN(const int64_t prompt_len, flags.Int("prompt-len", 32));
  LOOM_ASSIGN_OR_RETURN(const int64_t repeats, flags.Int("repeats", 5));
  for (int64_t c : concurrency) {
    if (c < 1 || c > 256) {
      return absl::InvalidArgumentError("--concurrency: each must be in [1, 256]");
    }
  }
  if (s.new_tokens < 2 || s.new_tokens > 100000 || prompt_len < 1 || prompt_len > 100000 ||
      repeats < 1) {
    return absl::InvalidArgumentError(
        "--new-tokens must be in [2, 100000], --prompt-len in [1, 100000], --repeats positive");
  }
  const bool each_run = flags.Bool("each-run");
  const bool attach = flags.Has("address") || flags.Has("http-address");
  if (attach && !(flags.Has("address") && flags.Has("http-address"))) {
    return absl::InvalidArgumentError("--address and --http-address go together");
  }
  if (attach && (flags.Has("model") || flags.Has("serve-arg"))) {
    return absl::InvalidArgumentError(
        "--model and --serve-arg are for a server this tool starts, not one at --address");
  }

  std::unique_ptr<ServeChild> serve;
  std::string address = flags.String("address"), http_address = flags.String("http-address");
  if (!attach) {
    const std::string model = flags.String("model", LOOM_DEFAULT_MODEL);
    if (!fs::exists(fs::path(model) / "config.json")) {
      return absl::NotFoundError(absl::StrCat("--model: ", model, " has no config.json"));
    }
    std::vector<std::string> args = {(SelfDir() / "loom").string(), "serve", "--model", model};
    args.insert(args.end(), {"--port", "0", "--http-port", "any"});
    for (const std::string& a : flags.All("serve-arg")) args.push_back(a);
    std::fprintf(stderr, "loom-bench-serving: starting %s\n", absl::StrJoin(args, " ").c_str());
    LOOM_ASSIGN_OR_RETURN(serve, ServeChild::Start({.argv = args,
                                                    .name = "loom-bench-serving",
                                                    .require_http = true}));
    address = serve->address();
    http_address = serve->http_address();
  }
  LOOM_ASSIGN_OR_RETURN(const auto http_hp, HostPort(http_address, "--http-address"));
  LOOM_RETURN_IF_ERROR(HostPort(address, "--address").status());

  Clients clients;
  clients.stub =
      loom::v1::Loom::NewStub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  loom::v1::GetStatusResponse status;
  {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    const grpc::Status st = clients.stub->GetStatus(&context, {}, &status);
    if (!st.ok()) {
      return absl::UnavailableError(
          absl::StrCat("no Loom server at ", address, ": ", st.error_message()));
    }
  }
  // The served directory gives the prompts' vocabulary and the tokenizer HTTP's tokens are
  // checked with; a server started elsewhere must have it at the same path.
  const std::string model_dir = status.model();
  absl::StatusOr<ModelConfig> mc = ModelConfig::FromModelDir(model_dir);
  if (!mc.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("the served model directory: ", mc.status().message()));
  }
  std::unique_ptr<tokenizer::Tokenizer> tok;
  if (!status.tokenizer().empty()) {
    LOOM_ASSIGN_OR_RETURN(tok, tokenizer::Tokenizer::FromModelDir(model_dir));
  }
  {
    httplib::Client c(http_hp.first, http_hp.second);
    httplib::Result models = c.Get("/v1/models");
    const json list =
        models && models->status == 200 ? json::parse(models->body, nullptr, false) : json();
    if (!list.is_object() || !list.value("data", json()).is_array() || list["data"].empty()) {
      return absl::UnavailableError(absl::StrCat("no OpenAI API at ", http_address));
    }
    s.http_model = list["data"][0].value("id", "");
  }

  const size_t most =
      static_cast<size_t>(*std::max_element(concurrency.begin(), concurrency.end()));
  for (size_t i = 0; i < most; ++i) {
    clients.http.push_back(std::make_unique<httplib::Client>(http_hp.first, http_hp.second));
    clients.http.back()->set_keep_alive(true);
    clients.http.back()->set_tcp_nodelay(true);
    clients.http.back()->set_read_timeout(s.deadline.count(), 0);
  }
  // Fixed pseudo-random prompts, distinct so that no request reuses another's KV blocks.
  std::mt19937 rng(1234);
  std::uniform_int_distribution<int32_t> id(0, static_cast<int32_t>(mc->vocab_size - 1));
  std::vector<std::vector<int32_t>> prompts(most, std::vector<int32_t>(prompt_len));
  for (auto& p : prompts) std::generate(p.begin(), p.end(), [&] { return id(rng); });

  std::printf(
      "loom-bench-serving: model %s (%s, %lld layers, hidden %lld); CPU %s, %u cores; "
      "server %s (gRPC) and http://%s (HTTP); greedy, ignore_eos\n",
      model_dir.c_str(), mc->architecture.c_str(), static_cast<long long>(mc->num_hidden_layers),
      static_cast<long long>(mc->hidden_size), CpuModel().c_str(),
      std::thread::hardware_concurrency(), address.c_str(), http_address.c_str());
  std::fflush(stdout);

  // The warm-up of each concurrency makes its reference, fills the prefix cache as the timed
  // runs will find it, opens the HTTP connections, and checks HTTP's tokens one by one.
  std::vector<std::vector<Reference>> refs(concurrency.size());
  for (size_t k = 0; k < concurrency.size(); ++k) {
    const size_t c = static_cast<size_t>(concurrency[k]);
    const std::string when = absl::StrCat("warm-up at concurrency ", c);
    const std::vector<Trace> grpc = RunOnce(clients, Protocol::kGrpc, s, prompts, c, false);
    for (const Trace& t : grpc) refs[k].push_back({t.ids, t.text});
    LOOM_RETURN_IF_ERROR(Check(grpc, refs[k], Protocol::kGrpc, s, when));  // errors, lengths
    const std::vector<Trace> http = RunOnce(clients, Protocol::kHttp, s, prompts, c, true);
    LOOM_RETURN_IF_ERROR(Check(http, refs[k], Protocol::kHttp, s, when));
    LOOM_RETURN_IF_ERROR(CheckTokenTexts(http, refs[k], tok.get()));
  }

  std::vector<std::vector<RunStats>> grpc(concurrency.size()), http(concurrency.size());
  for (int64_t r = 0; r < repeats; ++r) {
    for (size_t k = 0; k < concurrency.size(); ++k) {
      const size_t c = static_cast<size_t>(concurrency[k]);
      const std::string when = absl::StrCat("repeat ", r + 1, " at concurrency ", c);
      for (int turn = 0; turn < 2; ++turn) {
        const Protocol p = (turn == r % 2) ? Protocol::kGrpc : Protocol::kHttp;
        const std::vector<Trace> traces = RunOnce(clients, p, s, prompts, c, false);
        LOOM_RETURN_IF_ERROR(Check(traces, refs[k], p, s, when));
        const RunStats run = Summarize(traces, s.new_tokens);
        (p == Protocol::kGrpc ? grpc : http)[k].push_back(run);
        if (each_run) {
          std::fprintf(stderr,
                       "loom-bench-serving: %s %s: %.1f tok/s, %.3f ms/token, gap p50 %.3f p99 "
                       "%.3f ms, TTFT %.3f ms, %.1f messages, %d resent\n",
                       when.c_str(), p == Protocol::kGrpc ? "gRPC" : "HTTP", run.tokens_per_s,
                       run.tpot_ms, run.gap_p50_ms, run.gap_p99_ms, run.ttft_ms, run.messages,
                       run.resent);
        }
      }
    }
  }
  for (size_t k = 0; k < concurrency.size(); ++k) {
    PrintTable(static_cast<size_t>(concurrency[k]), grpc[k], http[k], s,
               static_cast<size_t>(prompt_len));
  }
  std::printf("\nEvery request streamed the same tokens over both protocols.\n");
  return absl::OkStatus();
}

std::vector<FlagSpec> Specs() {
  return {
      {"model", false, "model directory of the server this tool starts", LOOM_DEFAULT_MODEL},
      {"serve-arg", false, "an extra argument for `loom serve`; repeatable", ""},
      {"address", false, "gRPC HOST:PORT of a running server (with --http-address)", ""},
      {"http-address", false, "HTTP HOST:PORT of that server's OpenAI API", ""},
      {"concurrency", false, "streams at once, a list: one table each", "1,16"},
      {"new-tokens", false, "tokens each stream generates", "128"},
      {"prompt-len", false, "prompt ids per stream", "32"},
      {"repeats", false, "runs of each protocol at each concurrency (medians are printed)", "5"},
      {"each-run", true, "also print every run's figures (to stderr)", ""},
      {"help", true, "show this help", ""},
  };
}

}  // namespace
}  // namespace loom::cli

int main(int argc, char** argv) {
  return loom::cli::RunVerb("loom-bench-serving", argc, argv, loom::cli::Specs(), loom::cli::kUsage,
                            loom::cli::Run, /*first_arg=*/1);
}
