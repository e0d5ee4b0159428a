// Stop requests (SIGTERM, SIGUSR1, SIGINT) recorded as a flag that the training loop polls at
// step boundaries, so a scheduler's signal ends a run with a checkpoint instead of a torn one.
// Kept apart from the numerical kernels: process state, not arithmetic.
#ifndef KDSTOP_H
#define KDSTOP_H

/// Installs handlers that record SIGTERM, SIGUSR1 and SIGINT instead of terminating (a second
/// SIGINT terminates at once).
void kd_install_stop_handlers(void);
/// The signal number received since the last clear (0 = none).
int kd_stop_requested(void);
void kd_clear_stop_request(void);

#endif
