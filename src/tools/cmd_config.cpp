// `modtrain config show | check | doc`: print the resolved config, validate it, or print the
// reference of every key (docs/config.md).
#include <iostream>
#include <memory>

#include "commands.h"
#include "modtrain/config/schema.h"
#include "modtrain/core/error.h"
#include "modtrain/dist/guard.h"
#include "modtrain/dist/startup.h"
#include "modtrain/io/files.h"

namespace modtrain::tools {
namespace {

int config_show(const ConfigFlags& flags) {
  World world;
  return run_guarded(world, [&] {
    ResolvedConfig resolved = resolve_config_on_all_ranks(world, flags.path, flags.overrides);
    if (world.is_root()) std::cout << resolved.to_yaml() << std::flush;
    return kExitOk;
  });
}

int config_check(const ConfigFlags& flags) {
  World world;
  return run_guarded(world, [&] {
    resolve_config_on_all_ranks(world, flags.path, flags.overrides);
    if (world.is_root()) std::cout << "ok" << std::endl;
    return kExitOk;
  });
}

int config_doc(const std::string& out_path) {
  io::Output out(out_path.empty() ? "-" : out_path, {}, "--out");
  out.write(config_markdown());
  out.commit();
  return kExitOk;
}

}  // namespace

void add_config_commands(CLI::App& app, Action& action) {
  CLI::App* config = app.add_subcommand("config", "Inspect and validate experiment configs");

  auto show_flags = std::make_shared<ConfigFlags>();
  CLI::App* show =
      config->add_subcommand("show", "Print the fully resolved config as YAML (loads back to the same config)");
  add_config_flags(*show, *show_flags);
  show->callback([&action, show_flags] { action = [show_flags] { return config_show(*show_flags); }; });

  auto check_flags = std::make_shared<ConfigFlags>();
  CLI::App* check = config->add_subcommand("check", "Validate a config on every rank; prints `ok` or the first error");
  add_config_flags(*check, *check_flags);
  check->callback([&action, check_flags] { action = [check_flags] { return config_check(*check_flags); }; });

  auto doc_out = std::make_shared<std::string>();
  CLI::App* doc = config->add_subcommand("doc", "Print the reference of every config key as Markdown");
  doc->add_option("-o,--out", *doc_out, "Write to this file instead of stdout");
  doc->callback([&action, doc_out] { action = [doc_out] { return run_local([&] { return config_doc(*doc_out); }); }; });
}

}  // namespace modtrain::tools
