// Preemption and on-demand checkpoints by signal. Clusters ask a job to stop before killing it:
// Slurm sends SIGTERM to every task (or the signal named by --signal, e.g. USR1@120), and mpirun
// forwards SIGUSR1 and SIGUSR2 to every rank. install_handlers() turns
//   SIGTERM, SIGUSR1 -> stop_requested(): finish the step, save a checkpoint, exit 0
//   SIGUSR2          -> take_save_request(): save a checkpoint after the step and go on
// The trainer checks both after every step, summed over ranks, so one signalled rank is enough.
// A second SIGTERM/SIGUSR1 acts as the default (terminates at once).
#pragma once

namespace modtrain::signals {

void install_handlers();
bool stop_requested();
int stop_signal();         // the stop signal received, 0 when none
bool take_save_request();  // true once per SIGUSR2 received (then cleared)

}  // namespace modtrain::signals
