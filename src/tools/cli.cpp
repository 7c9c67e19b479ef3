// Shared CLI plumbing: config flags and the parse-then-run step with exit-code mapping.
#include <cstdio>

#include "commands.h"
#include "modtrain/core/error.h"
#include "modtrain/core/log.h"
#include "modtrain/io/files.h"

namespace modtrain::tools {

void add_config_flags(CLI::App& command, ConfigFlags& flags) {
  command.add_option("-c,--config", flags.path, "Experiment YAML file (built-in defaults when omitted)");
  command
      .add_option("--set", flags.overrides,
                  "Override one key, highest priority: --set train.lr=1e-4 (repeatable; lists as [a,b])")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)
      ->type_name("SECTION.KEY=VALUE");
}

int run_local(const std::function<int()>& body) {
  try {
    return body();
  } catch (const Error& e) {
    log::error(e.what());
    return e.exit_code();
  } catch (const std::filesystem::filesystem_error& e) {
    log::error(describe_filesystem_error(e));
    return kExitUsage;
  } catch (const std::exception& e) {
    std::string what = e.what();
    log::error(what.substr(0, what.find('\n')));
    return kExitRuntime;
  } catch (...) {  // not a std::exception: still one line and the runtime-failure code
    log::error("internal error: " + describe_current_exception() +
               " (a modtrain bug; please report it with the command line)");
    return kExitRuntime;
  }
}

int parse_and_run(CLI::App& app, Action& action, int argc, char** argv) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    app.exit(e);  // prints help/version (exit 0) or the error with a --help hint
    return e.get_exit_code() == 0 ? kExitOk : kExitUsage;
  }
  if (!action) {  // `modtrain` or `modtrain config` alone
    std::fprintf(
        stderr, "error: a subcommand is required; run `%s --help` for the list\n",
        app.get_subcommands().empty() ? "modtrain" : ("modtrain " + app.get_subcommands().back()->get_name()).c_str());
    return kExitUsage;
  }
  const int rc = run_local(action);  // every command's body already maps its errors; this is the net under it
  if (rc != kExitOk) return rc;
  // Standard output is the product of many commands (tokenize, config show, data stats, eval,
  // predict -): a failed write (a full disk, /dev/full, an I/O error) must not end in exit 0.
  return run_local([] {
    io::finish_stdout();
    return kExitOk;
  });
}

}  // namespace modtrain::tools
