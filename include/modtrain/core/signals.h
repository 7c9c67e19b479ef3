// Preemption signals. Clusters ask a job to stop before killing it: Slurm sends SIGTERM to every
// task (or the signal named by --signal, e.g. USR1@120), and mpirun forwards SIGUSR1 to every
// rank. install_stop_handlers() turns SIGTERM and SIGUSR1 into a flag that the trainer checks
// after every step (summed over ranks, so one signalled rank stops them all): the ranks finish
// the step, save a checkpoint and exit 0. A second signal of the same kind acts as the default
// (terminates at once).
#pragma once

namespace modtrain::signals {

void install_stop_handlers();
bool stop_requested();
int stop_signal();  // the signal number received, 0 when none

}  // namespace modtrain::signals
