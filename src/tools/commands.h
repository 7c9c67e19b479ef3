// The subcommands of the `modtrain` executable. Each add_*_commands registers its CLI11
// subcommands; the one the user picked stores its body in `action`, which main runs after parsing.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "modtrain/config/config.h"
#include "modtrain/data/prepare.h"
#include "modtrain/dist/world.h"

namespace modtrain::tools {

using Action = std::function<int()>;

// Flags shared by every command that reads a config: --config FILE and repeatable --set k=v.
struct ConfigFlags {
  std::string path;
  std::vector<std::string> overrides;
};
void add_config_flags(CLI::App& command, ConfigFlags& flags);

// Runs a command that needs no MPI world, turning errors into one line and an exit code.
int run_local(const std::function<int()>& body);

// Every rank of `world` prepares its share of data.train / data.valid (data/prepare.h), waiting at
// most data.prepare_timeout_s for the others at each step; `threads` per rank (0: this node's
// cores shared by its ranks). Rank 0 prints the summary to `summary`.
PrepareReport prepare_on_all_ranks(const World& world, const Config& config, int threads, std::FILE* summary);

void add_config_commands(CLI::App& app, Action& action);     // config show | check | doc
void add_data_commands(CLI::App& app, Action& action);       // data synth | prepare | stats
void add_tokenizer_commands(CLI::App& app, Action& action);  // tokenizer train, tokenize
void add_train_commands(CLI::App& app, Action& action);      // train, eval
void add_export_commands(CLI::App& app, Action& action);     // export
void add_predict_commands(CLI::App& app, Action& action);    // predict
void add_dist_commands(CLI::App& app, Action& action);       // dist selftest
void add_serve_commands(CLI::App& app, Action& action);      // serve

// Parses argv and runs the chosen action. Usage errors exit 2 with CLI11's message.
int parse_and_run(CLI::App& app, Action& action, int argc, char** argv);

}  // namespace modtrain::tools
