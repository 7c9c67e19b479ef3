#include "modtrain/core/signals.h"

#include <csignal>

namespace modtrain::signals {
namespace {

volatile std::sig_atomic_t g_stop = 0;
volatile std::sig_atomic_t g_save = 0;

// Async-signal-safe: one store each.
extern "C" void on_stop_signal(int sig) { g_stop = sig; }
extern "C" void on_save_signal(int) { g_save = 1; }

}  // namespace

void install_handlers() {
  struct sigaction stop {};
  stop.sa_handler = on_stop_signal;
  sigemptyset(&stop.sa_mask);
  stop.sa_flags = SA_RESTART | SA_RESETHAND;  // a second signal terminates as usual
  sigaction(SIGTERM, &stop, nullptr);
  sigaction(SIGUSR1, &stop, nullptr);
  struct sigaction save {};
  save.sa_handler = on_save_signal;
  sigemptyset(&save.sa_mask);
  save.sa_flags = SA_RESTART;
  sigaction(SIGUSR2, &save, nullptr);
}

bool stop_requested() { return g_stop != 0; }
int stop_signal() { return g_stop; }

bool take_save_request() {
  if (!g_save) return false;
  g_save = 0;
  return true;
}

}  // namespace modtrain::signals
