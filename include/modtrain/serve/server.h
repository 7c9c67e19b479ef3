// `modtrain serve`: score posts over HTTP (serve/batcher.h behind the routes).
//   POST /v1/moderate  {"posts": [{"id": ..., "text": ...}]} -> {"model", "labels", "results": [{"id",
//                      "scores": {label: p}, "flagged": [label]}]}: predict's scores and flags
//   POST /predict      Hugging Face text-embeddings-inference's request and response for sequence
//                      classification (router/src/http/types.rs: PredictRequest / PredictResponse)
//   GET  /health       the process answers; GET /ready: the model is loaded and warmed up and the
//                      server is not draining; GET /metrics: Prometheus text (serve/metrics.h)
//   POST /admin/reload  with --admin-token-file only: load the model directory again, or another
// SIGHUP reloads too; SIGTERM/SIGINT stop accepting and drain within serve.drain_s, then exit 0.
#pragma once

#include <string>

#include "modtrain/config/config.h"

namespace modtrain {

struct ServeOptions {
  ServeConfig config;
  std::string model_dir;
  std::string admin_token;  // "" = /admin/reload is not served
};

// Runs until SIGTERM or SIGINT and the drain; returns the exit code. Errors before serving (the
// model, the port) throw UserError with one line.
int serve(const ServeOptions& options);

}  // namespace modtrain
