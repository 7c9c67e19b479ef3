// Error types shared by every module. A user error (bad config, data, file or flag) carries a
// message that says what, where and how to fix it; `main` prints it as one line and exits.
#pragma once

#include <filesystem>
#include <stdexcept>
#include <string>

namespace modtrain {

// Process exit codes (documented in the README).
enum ExitCode : int {
  kExitOk = 0,
  kExitRuntime = 1,  // a runtime failure: I/O, numerical, a collective that timed out
  kExitUsage = 2,    // a usage error: flags, config files, config values
};

// Base of all modtrain errors. `exit_code` is what the process should return.
class Error : public std::runtime_error {
 public:
  Error(const std::string& message, int exit_code) : std::runtime_error(message), exit_code_(exit_code) {}
  int exit_code() const { return exit_code_; }

 private:
  int exit_code_;
};

// A mistake the user can fix: input files, config, flags. Exit code 2 unless told otherwise.
class UserError : public Error {
 public:
  explicit UserError(const std::string& message, int exit_code = kExitUsage) : Error(message, exit_code) {}
};

// A configuration error (syntax, unknown key, type, range, extends). Always exit code 2.
class ConfigError : public UserError {
 public:
  explicit ConfigError(const std::string& message) : UserError(message, kExitUsage) {}
};

// A failure that is not the user's input: a broken invariant, a failed library call.
class InternalError : public Error {
 public:
  explicit InternalError(const std::string& message) : Error(message, kExitRuntime) {}
};

// An error that every rank raised at the same synchronisation point (for instance all ranks
// agreed that the config is invalid). The ranks can exit together without MPI_Abort.
// `already_reported` is true when the message was printed by the ranks that needed to print it.
class CollectiveError : public Error {
 public:
  CollectiveError(const std::string& message, int exit_code, bool already_reported)
      : Error(message, exit_code), already_reported_(already_reported) {}
  bool already_reported() const { return already_reported_; }

 private:
  bool already_reported_;
};

// One user-facing line for a std::filesystem error that escaped (a parent that is a file, a
// directory that cannot be created, permissions): the path, the cause and what to check, instead
// of "filesystem error: cannot create directories: Not a directory". Its exit code is kExitUsage.
std::string describe_filesystem_error(const std::filesystem::filesystem_error& e);

// One line for the exception being handled (call inside a catch block): the first line of what()
// for a std::exception, "an exception of unknown type" for anything else.
std::string describe_current_exception();

// The last resort, installed first thing in main: std::terminate (an exception that escaped every
// handler, or one thrown on a thread nobody joined) prints one "error: internal error: ..." line
// and exits kExitRuntime; under MPI with other ranks it calls MPI_Abort so that no rank is left
// waiting in a collective. Tested by tests/cli/hostile/crashes.sh (MODTRAIN_FAULT=...:terminate).
void install_terminate_handler();

}  // namespace modtrain
