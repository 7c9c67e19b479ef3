// modtrain: data-parallel training of content-moderation classifiers.
// This file is the table of contents: one line per group of subcommands.
#include "commands.h"
#include "modtrain/core/build_info.h"
#include "modtrain/core/cpu_runtime.h"
#include "modtrain/core/error.h"

int main(int argc, char** argv) {
  modtrain::tune_cpu_runtime();           // malloc keeps freed tensor memory (core/cpu_runtime.h)
  modtrain::install_terminate_handler();  // the last resort: one line, exit 1, every rank stopped
  CLI::App app{"modtrain: train content-moderation classifiers (BERT) data-parallel over MPI/NCCL ranks"};
  app.set_version_flag("--version", [] { return modtrain::version_text(); });

  modtrain::tools::Action action;
  modtrain::tools::add_config_commands(app, action);     // config show | check | doc
  modtrain::tools::add_data_commands(app, action);       // data synth | prepare | stats
  modtrain::tools::add_tokenizer_commands(app, action);  // tokenizer train, tokenize
  modtrain::tools::add_train_commands(app, action);      // train, eval
  modtrain::tools::add_export_commands(app, action);     // export
  modtrain::tools::add_predict_commands(app, action);    // predict
  modtrain::tools::add_dist_commands(app, action);       // dist selftest
  modtrain::tools::add_serve_commands(app, action);      // serve

  return modtrain::tools::parse_and_run(app, action, argc, argv);
}
