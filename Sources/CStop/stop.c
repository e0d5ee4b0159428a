// Stop requests from the scheduler: SIGTERM (Slurm time limit, scontrol requeue, preemption) and
// SIGUSR1 (#SBATCH --signal) set a flag that the training loop polls at step boundaries; so does
// SIGINT (Ctrl-C), and a second Ctrl-C ends the process at once.
#include "kdstop.h"
#include <signal.h>
#include <string.h>

static volatile sig_atomic_t kd_stop_signal = 0;

static void kd_on_stop(int sig) {
    if (sig == SIGINT && kd_stop_signal == SIGINT) {   // the second Ctrl-C: do not wait
        signal(SIGINT, SIG_DFL);
        raise(SIGINT);
        return;
    }
    kd_stop_signal = sig;
}

void kd_install_stop_handlers(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = kd_on_stop;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
}

int kd_stop_requested(void) { return (int)kd_stop_signal; }
void kd_clear_stop_request(void) { kd_stop_signal = 0; }
