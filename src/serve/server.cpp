// `modtrain serve`'s HTTP side (serve/server.h). cpp-httplib (Debian's libcpp-httplib-dev) runs a
// pool of connection threads; each request's thread parses and encodes its posts and waits in the
// batcher, so a slow client or a disconnect holds one connection thread and nothing else.
#include "modtrain/serve/server.h"

#include <fcntl.h>
#include <httplib.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "modtrain/core/build_info.h"
#include "modtrain/core/error.h"
#include "modtrain/core/text.h"
#include "modtrain/data/utf8.h"
#include "modtrain/serve/batcher.h"
#include "modtrain/serve/metrics.h"

namespace modtrain {
namespace {

using json = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

constexpr int kMaxJsonDepth = 32;  // far above the requests' 4 levels; bounds a hostile body's nesting

// A request error: its status and the one line the body's "error" says.
struct HttpError {
  int status;
  std::string message;
  std::string tei_type;  // /predict's error_type (TEI: Validation, Overloaded, Backend)
};

void reply(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace) + "\n", "application/json");
}

// The body as JSON, its invalid UTF-8 repaired (as predict repairs its input) and its nesting bounded.
json parse_body(std::string body, ServeMetrics& metrics) {
  const size_t repaired = repair_utf8_text(body);
  if (repaired) metrics.utf8_repairs(repaired);
  try {
    return json::parse(body, [](int depth, json::parse_event_t, json&) {
      if (depth > kMaxJsonDepth)
        throw HttpError{400, "the JSON nests deeper than " + std::to_string(kMaxJsonDepth) + " levels", "Validation"};
      return true;
    });
  } catch (const json::exception& e) {  // parse_error; out_of_range 406 for a number past a double (1e400)
    std::string what = e.what();        // "[json.exception.parse_error.101] parse error at line 1, column 5: ..."
    const size_t at = what.find("] ");
    throw HttpError{400, "invalid JSON: " + (at == std::string::npos ? what : what.substr(at + 2)), "Validation"};
  }
}

// As predict: a post of nothing but spaces, tabs and line breaks has nothing to score.
bool is_blank(const std::string& s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; });
}

class Server {
 public:
  explicit Server(const ServeOptions& o)
      : options_(o),
        batcher_({o.config.max_batch_tokens, o.config.max_wait_ms, o.config.max_queue_posts, o.config.workers,
                  o.config.threads},
                 [this](const BatchRecord& b) { metrics_.batch(b.posts, b.tokens, b.forward_ms / 1e3, b.queue_ms); }) {}

  void load(const std::string& dir) {
    auto model = load_served_model(dir, options_.config.device);
    metrics_.model(model->id, model->dir, model->load_seconds);
    std::atomic_store(&model_, model);
    std::fprintf(stderr, "serve: model %s from %s on %s (%s; loaded and warmed up in %.2f s)\n", model->id.c_str(),
                 dir.c_str(), model->device.c_str(), text::join(model->labels, ", ").c_str(), model->load_seconds);
  }

  // A reload: the new model is loaded, checked and warmed up while the old one serves; then new
  // requests go to it. A bad model is refused with one line and the old one keeps serving.
  std::pair<bool, std::string> reload(const std::string& dir) {
    std::lock_guard<std::mutex> lock(reload_mutex_);
    const std::string previous = std::atomic_load(&model_)->id;
    try {
      load(dir.empty() ? std::atomic_load(&model_)->dir : dir);
      metrics_.reload(true);
      return {true, previous};
    } catch (const std::exception& e) {
      metrics_.reload(false);
      std::fprintf(stderr, "serve: reload refused, model %s keeps serving: %s\n", previous.c_str(), e.what());
      return {false, e.what()};
    }
  }

  void routes(httplib::Server& svr) {
    svr.Post("/v1/moderate", [this](const httplib::Request& req, httplib::Response& res) {
      handle("/v1/moderate", res, [&](const std::shared_ptr<const ServedModel>& m) { moderate(m, req, res); });
    });
    svr.Post("/predict", [this](const httplib::Request& req, httplib::Response& res) {
      handle("/predict", res, [&](const std::shared_ptr<const ServedModel>& m) { predict(m, req, res); });
    });
    svr.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
      handle("/health", res, [&](const std::shared_ptr<const ServedModel>&) { reply(res, 200, {{"status", "ok"}}); });
    });
    svr.Get("/ready", [this](const httplib::Request&, httplib::Response& res) {
      handle("/ready", res, [&](const std::shared_ptr<const ServedModel>& m) {
        if (draining_) throw HttpError{503, "draining: the server is shutting down", "Unhealthy"};
        reply(res, 200, {{"ready", true}, {"model", m->id}});
      });
    });
    svr.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      handle("/metrics", res, [&](const std::shared_ptr<const ServedModel>&) {
        res.set_content(metrics_.render(batcher_.queued_posts(), options_.config.max_queue_posts),
                        "text/plain; version=0.0.4");
      });
    });
    if (!options_.admin_token.empty())
      svr.Post("/admin/reload", [this](const httplib::Request& req, httplib::Response& res) {
        handle("/admin/reload", res, [&](const std::shared_ptr<const ServedModel>&) { admin_reload(req, res); });
      });
    // Statuses cpp-httplib sets itself (413 for a body over serve.max_body_bytes, 404, 400 for a
    // malformed request line): one line saying what, as every other error.
    svr.set_error_handler([this](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty()) return;
      std::string what = res.status == 413 ? "the request body is larger than serve.max_body_bytes = " +
                                                 std::to_string(options_.config.max_body_bytes) + " bytes"
                         : res.status == 404
                             ? "no route " + req.method + " " + req.path +
                                   " (POST /v1/moderate, POST /predict, GET /health, /ready, /metrics)"
                             : "the request could not be read (HTTP status " + std::to_string(res.status) + ")";
      reply(res, res.status, {{"error", what}});
      metrics_.request(req.path, res.status, 0);
    });
  }

  void drain() { draining_ = true; }
  bool draining() const { return draining_; }
  const ServeMetrics& metrics() const { return metrics_; }

 private:
  template <class Fn>
  void handle(const std::string& route, httplib::Response& res, Fn fn) {
    const auto start = Clock::now();
    const std::shared_ptr<const ServedModel> model = std::atomic_load(&model_);  // the model this request uses
    try {
      fn(model);
    } catch (const HttpError& e) {
      json body = {{"error", e.message}};
      if (route == "/predict") body["error_type"] = e.tei_type;
      reply(res, e.status, body);
      if (e.status == 503) res.set_header("Retry-After", "1");
    } catch (const std::exception& e) {  // a bug or a failed forward pass: the server stays up
      reply(res, 500, {{"error", std::string("internal error: ") + e.what()}});
    }
    res.set_header("X-Model-Id", model->id);
    metrics_.request(route, res.status, std::chrono::duration<double>(Clock::now() - start).count());
  }

  std::vector<PostScores> score(const std::shared_ptr<const ServedModel>& m, const std::vector<std::string>& texts) {
    if (static_cast<int64_t>(texts.size()) > options_.config.max_posts_per_request)
      throw HttpError{413,
                      std::to_string(texts.size()) + " posts in one request; serve.max_posts_per_request is " +
                          std::to_string(options_.config.max_posts_per_request) + ": split the request",
                      "Validation"};
    std::vector<PostScores> out;
    if (draining_ || !batcher_.score(m, texts, out))
      throw HttpError{503,
                      draining_ ? "draining: the server is shutting down"
                                : "the queue is full (serve.max_queue_posts = " +
                                      std::to_string(options_.config.max_queue_posts) + " posts); retry after 1 s",
                      "Overloaded"};
    return out;
  }

  void moderate(const std::shared_ptr<const ServedModel>& m, const httplib::Request& req, httplib::Response& res) {
    const json body = parse_body(req.body, metrics_);
    if (!body.is_object() || !body.contains("posts"))
      throw HttpError{400, "the body must be an object with \"posts\": [{\"id\": ..., \"text\": ...}, ...]", ""};
    const json& posts = body["posts"];
    if (!posts.is_array()) throw HttpError{400, "\"posts\" must be an array of {\"id\", \"text\"} objects", ""};
    std::vector<std::string> texts;
    for (size_t i = 0; i < posts.size(); ++i) {
      const std::string where = "posts[" + std::to_string(i) + "]";
      if (!posts[i].is_object()) throw HttpError{400, where + " must be an object with a \"text\"", ""};
      if (!posts[i].contains("text")) throw HttpError{400, where + " has no \"text\"", ""};
      if (!posts[i]["text"].is_string())
        throw HttpError{400, where + ".text must be a string, not " + std::string(posts[i]["text"].type_name()), ""};
      if (posts[i].contains("id") && !posts[i]["id"].is_string() && !posts[i]["id"].is_number() &&
          !posts[i]["id"].is_null())
        throw HttpError{400, where + ".id must be a string or a number", ""};
      texts.push_back(posts[i]["text"].get<std::string>());
      if (is_blank(texts.back())) throw HttpError{400, where + ".text is empty: nothing to score", ""};
    }
    const std::vector<PostScores> scores = score(m, texts);
    json results = json::array();
    for (size_t i = 0; i < scores.size(); ++i) {
      json s = json::object(), flagged = json::array();
      for (size_t l = 0; l < m->labels.size(); ++l)
        s[m->labels[l]] = std::isfinite(scores[i].scores[l]) ? json(scores[i].scores[l]) : json(nullptr);
      for (size_t l : scores[i].flagged) flagged.push_back(m->labels[l]);
      json r = {{"id", posts[i].contains("id") ? posts[i]["id"] : json(nullptr)}, {"scores", s}, {"flagged", flagged}};
      if (!scores[i].finite) r["error"] = "a score is not a finite number (the weights or this input overflow)";
      results.push_back(std::move(r));
    }
    reply(res, 200, {{"model", m->id}, {"labels", m->labels}, {"results", results}});
  }

  // TEI's /predict: "inputs" a string (one text), a list of one string, or a batch [[text], ...];
  // pairs ([a, b]) are refused (modtrain's classifiers read one text). The answer per text is every
  // label with its score, highest first.
  void predict(const std::shared_ptr<const ServedModel>& m, const httplib::Request& req, httplib::Response& res) {
    const json body = parse_body(req.body, metrics_);
    if (!body.is_object() || !body.contains("inputs"))
      throw HttpError{422, "the body must be an object with \"inputs\" (TEI's PredictRequest)", "Validation"};
    const json& in = body["inputs"];
    const bool raw = body.contains("raw_scores") && body["raw_scores"].is_boolean() && body["raw_scores"].get<bool>();
    const auto pair_error = [] {
      return HttpError{422, "sentence pairs are not supported: a modtrain classifier scores one text", "Validation"};
    };
    std::vector<std::string> texts;
    bool batch = false;
    if (in.is_string()) {
      texts.push_back(in.get<std::string>());
    } else if (in.is_array() && !in.empty() && in[0].is_string()) {
      if (in.size() == 2) throw pair_error();
      if (in.size() != 1 || !in[0].is_string())
        throw HttpError{422, "\"inputs\" must be a string or [string]", "Validation"};
      texts.push_back(in[0].get<std::string>());
    } else if (in.is_array() && !in.empty()) {
      batch = true;
      for (size_t i = 0; i < in.size(); ++i) {
        if (!in[i].is_array() || in[i].empty() || !in[i][0].is_string())
          throw HttpError{422, "inputs[" + std::to_string(i) + "] must be [text]", "Validation"};
        if (in[i].size() > 1) throw pair_error();
        texts.push_back(in[i][0].get<std::string>());
      }
    } else {
      throw HttpError{422, "\"inputs\" must be a string, [string] or a batch [[string], ...]", "Validation"};
    }
    for (size_t i = 0; i < texts.size(); ++i)
      if (is_blank(texts[i]))
        throw HttpError{422, "inputs[" + std::to_string(i) + "] is empty: nothing to score", "Validation"};
    const std::vector<PostScores> scores = score(m, texts);
    json out = json::array();
    for (const PostScores& p : scores) {
      const std::vector<float>& v = raw ? p.logits : p.scores;
      std::vector<size_t> order(v.size());
      for (size_t l = 0; l < order.size(); ++l) order[l] = l;
      std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return v[a] > v[b]; });
      json one = json::array();
      for (size_t l : order)
        one.push_back({{"score", std::isfinite(v[l]) ? json(v[l]) : json(nullptr)}, {"label", m->labels[l]}});
      out.push_back(std::move(one));
    }
    reply(res, 200, batch ? out : out[0]);
  }

  void admin_reload(const httplib::Request& req, httplib::Response& res) {
    if (req.get_header_value("Authorization") != "Bearer " + options_.admin_token)
      throw HttpError{401, "POST /admin/reload needs \"Authorization: Bearer <the token in --admin-token-file>\"", ""};
    std::string dir;
    if (!req.body.empty()) {
      const json body = parse_body(req.body, metrics_);
      if (!body.is_object() || (body.contains("model") && !body["model"].is_string()))
        throw HttpError{400, "the body must be empty or {\"model\": \"DIR\"}", ""};
      if (body.contains("model")) dir = body["model"].get<std::string>();
    }
    const auto [ok, detail] = reload(dir);
    if (!ok) throw HttpError{422, "reload refused, the previous model keeps serving: " + detail, ""};
    reply(res, 200, {{"model", std::atomic_load(&model_)->id}, {"previous", detail}});
  }

  ServeOptions options_;
  ServeMetrics metrics_;
  Batcher batcher_;
  std::shared_ptr<const ServedModel> model_;  // read and swapped with std::atomic_load / atomic_store
  std::mutex reload_mutex_;
  std::atomic<bool> draining_{false};
};

}  // namespace

namespace {
// Signals reach the watcher thread through a pipe: the handler (async-signal-safe: one write)
// runs on whichever thread the kernel picks, including threads that libraries started before
// serve() (OpenBLAS's pool), which a signal mask set here would not cover. Byte 0 = "finish".
int signal_pipe[2] = {-1, -1};
extern "C" void on_signal(int s) {
  const unsigned char b = static_cast<unsigned char>(s);
  const ssize_t ignored = ::write(signal_pipe[1], &b, 1);
  (void)ignored;
}
int next_signal() {
  unsigned char b = 0;
  for (;;) {
    const ssize_t n = ::read(signal_pipe[0], &b, 1);
    if (n == 1) return b;
    if (n < 0 && errno == EINTR) continue;
    return 0;
  }
}
}  // namespace

int serve(const ServeOptions& options) {
  const ServeConfig& c = options.config;
  if (signal_pipe[0] < 0 && ::pipe2(signal_pipe, O_CLOEXEC) != 0)
    throw UserError(std::string("serve: cannot create the signal pipe: ") + std::strerror(errno), kExitRuntime);
  struct sigaction action = {};
  action.sa_handler = on_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  for (int s : {SIGTERM, SIGINT, SIGHUP}) sigaction(s, &action, nullptr);
  std::signal(SIGPIPE, SIG_IGN);  // a client gone mid-answer is an error return, not the end of the server

  Server server(options);
  server.load(options.model_dir);
  std::fprintf(stderr, "serve: CPU: %s\n", cpu_line().c_str());
  httplib::Server svr;
  svr.new_task_queue = [threads = c.http_threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  svr.set_payload_max_length(static_cast<size_t>(c.max_body_bytes));
  // A keep-alive connection holds one connection thread between its requests (cpp-httplib's
  // model): serve.http_threads bounds the clients served at once; up to 1000 requests each.
  svr.set_keep_alive_max_count(1000);
  svr.set_tcp_nodelay(
      true);  // an answer is headers + body: without it Nagle holds the body for the client's delayed ACK (40 ms)
  svr.set_keep_alive_timeout(5);
  svr.set_read_timeout(10, 0);
  svr.set_write_timeout(10, 0);
  // SO_REUSEADDR only: cpp-httplib's default adds SO_REUSEPORT, with which a second `modtrain
  // serve` on the same port binds without error and the kernel splits the clients between the old
  // and the new process (seen: a forgotten server took half a benchmark's requests). One server per
  // port; a restart on the same port still binds at once (REUSEADDR covers TIME_WAIT).
  svr.set_socket_options([](socket_t sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  server.routes(svr);
  const int port = c.port == 0 ? svr.bind_to_any_port(c.host) : (svr.bind_to_port(c.host, c.port) ? c.port : -1);
  if (port < 0)
    throw UserError("cannot listen on " + c.host + ":" + std::to_string(c.port) +
                        " (in use, or not an address of this machine); choose another with --port or serve.port",
                    kExitRuntime);
  std::printf("modtrain serve: listening on http://%s:%d\n", c.host.c_str(), port);
  std::fflush(stdout);

  // Shared with the drain timer, which may outlive this function by a moment.
  const auto stopped = std::make_shared<std::atomic<bool>>(false);
  std::thread watcher([&] {
    for (;;) {
      const int s = next_signal();
      if (s == 0 || *stopped) return;  // the server has ended: woken to finish
      if (s == SIGHUP) {
        std::fprintf(stderr, "serve: SIGHUP: reloading the model\n");
        server.reload("");
        continue;
      }
      if (server.draining()) {  // a second SIGTERM / SIGINT: do not wait for the drain
        std::fprintf(stderr, "serve: second stop signal: exiting without the requests in flight\n");
        std::fflush(stderr);
        std::_Exit(kExitRuntime);
      }
      // SIGTERM / SIGINT: stop accepting, let the requests in flight finish, bounded by drain_s.
      std::fprintf(stderr, "serve: %s: draining (at most serve.drain_s = %g s)\n", s == SIGINT ? "SIGINT" : "SIGTERM",
                   c.drain_s);
      server.drain();
      svr.stop();
      std::thread([stopped, drain = c.drain_s] {
        const auto deadline = Clock::now() + std::chrono::duration<double>(drain);
        while (!*stopped && Clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(20));
        if (*stopped) return;
        std::fprintf(stderr, "serve: requests still in flight after serve.drain_s = %g s; exiting without them\n",
                     drain);
        std::fflush(stderr);
        std::_Exit(kExitRuntime);
      }).detach();
    }
  });
  svr.listen_after_bind();  // returns once stopped and every connection thread has finished
  const bool signalled = server.draining();
  *stopped = true;
  on_signal(0);  // wakes the watcher, which sees `stopped` and ends
  watcher.join();
  if (!signalled)
    throw UserError("serve: listening on " + c.host + ":" + std::to_string(port) + " stopped unexpectedly",
                    kExitRuntime);
  std::fprintf(stderr, "serve: drained, exiting\n");
  return kExitOk;
}

}  // namespace modtrain
