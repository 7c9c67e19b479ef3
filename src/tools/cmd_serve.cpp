// `modtrain serve`: the model behind HTTP with dynamic batching (serve/server.h). Reads the config
// only for its `serve` section (--config / --set serve.KEY=V); --host and --port override it.
#include <memory>

#include "commands.h"
#include "modtrain/config/loader.h"
#include "modtrain/core/error.h"
#include "modtrain/io/files.h"
#include "modtrain/serve/server.h"

namespace modtrain::tools {
namespace {

struct ServeFlags {
  ConfigFlags config;
  std::string model, host, admin_token_file;
  int port = -1;
};

int serve_command(const ServeFlags& flags) {
  ServeOptions o;
  o.config = load_config(flags.config.path, flags.config.overrides).config.serve;
  if (!flags.host.empty()) o.config.host = flags.host;
  if (flags.port >= 0) o.config.port = flags.port;
  o.model_dir = flags.model;
  if (!flags.admin_token_file.empty()) {
    o.admin_token = io::read_file(flags.admin_token_file, 4096, "--admin-token-file");
    while (!o.admin_token.empty() && (o.admin_token.back() == '\n' || o.admin_token.back() == '\r'))
      o.admin_token.pop_back();
    if (o.admin_token.size() < 16)
      throw UserError("--admin-token-file " + flags.admin_token_file + ": the token has " +
                          std::to_string(o.admin_token.size()) +
                          " characters; use at least 16 (e.g. openssl rand -hex 32)",
                      kExitUsage);
  }
  return serve(o);
}

}  // namespace

void add_serve_commands(CLI::App& app, Action& action) {
  auto flags = std::make_shared<ServeFlags>();
  CLI::App* s =
      app.add_subcommand("serve", "Score posts over HTTP with dynamic batching (POST /v1/moderate, /predict)");
  add_config_flags(*s, flags->config);
  s->add_option("--model", flags->model, "Model directory (RUN/model)")->required();
  s->add_option("--host", flags->host, "Address to listen on (default serve.host: 127.0.0.1, loopback only)");
  s->add_option("--port", flags->port, "Port (default serve.port; 0: any free port, printed at start)")
      ->check(CLI::Range(0, 65535));
  s->add_option("--admin-token-file", flags->admin_token_file,
                "Serve POST /admin/reload, authorised by \"Authorization: Bearer <this file's token>\"");
  s->callback([&action, flags] { action = [flags] { return run_local([&] { return serve_command(*flags); }); }; });
}

}  // namespace modtrain::tools
