// A small persistent pthread pool for kdtrain's elementwise and lowering kernels.
#include "kdkernels.h"
#include <pthread.h>
#include <stdlib.h>

#define KD_MAX_THREADS 256

static pthread_mutex_t kd_mu = PTHREAD_MUTEX_INITIALIZER;   // guards job fields
static pthread_cond_t kd_wake = PTHREAD_COND_INITIALIZER;   // workers wait for a job
static pthread_cond_t kd_done = PTHREAD_COND_INITIALIZER;   // caller waits for completion
static pthread_mutex_t kd_call_mu = PTHREAD_MUTEX_INITIALIZER; // one parallel_for at a time

static int kd_threads = 1;          // requested thread count
static int kd_started = 0;          // workers created
static unsigned long kd_generation = 0;
static kd_range_fn kd_job_fn;
static void *kd_job_ctx;
static long kd_job_n, kd_job_chunk;
static int kd_job_parts;            // chunks in the current job
static int kd_pending;              // chunks not finished yet (workers' parts)

typedef struct { int index; } kd_worker_arg;

static void *kd_worker(void *arg) {
    int index = ((kd_worker_arg *)arg)->index; // worker i runs chunk i+1 (chunk 0 is the caller's)
    free(arg);
    unsigned long seen = 0;
    for (;;) {
        pthread_mutex_lock(&kd_mu);
        while (kd_generation == seen) pthread_cond_wait(&kd_wake, &kd_mu);
        seen = kd_generation;
        int part = index + 1;
        int active = part < kd_job_parts;
        kd_range_fn fn = kd_job_fn; void *ctx = kd_job_ctx;
        long n = kd_job_n, chunk = kd_job_chunk;
        pthread_mutex_unlock(&kd_mu);
        if (!active) continue;
        long b = (long)part * chunk, e = b + chunk < n ? b + chunk : n;
        if (b < e) fn(ctx, b, e);
        pthread_mutex_lock(&kd_mu);
        if (--kd_pending == 0) pthread_cond_signal(&kd_done);
        pthread_mutex_unlock(&kd_mu);
    }
    return NULL;
}

void kd_set_threads(int n) {
    if (n < 1) n = 1;
    if (n > KD_MAX_THREADS) n = KD_MAX_THREADS;
    pthread_mutex_lock(&kd_call_mu);
    kd_threads = n;
    pthread_mutex_unlock(&kd_call_mu);
}

int kd_get_threads(void) { return kd_threads; }

void kd_parallel_for(long n, long grain, kd_range_fn fn, void *ctx) {
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    int parts = kd_threads;
    if ((long)parts > (n + grain - 1) / grain) parts = (int)((n + grain - 1) / grain);
    if (parts <= 1) { fn(ctx, 0, n); return; }
    pthread_mutex_lock(&kd_call_mu);
    while (kd_started < parts - 1) {           // grow the pool on demand; never shrinks
        kd_worker_arg *a = malloc(sizeof *a);
        a->index = kd_started;
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&t, &attr, kd_worker, a) != 0) { free(a); pthread_attr_destroy(&attr); break; }
        pthread_attr_destroy(&attr);
        kd_started++;
    }
    if (parts - 1 > kd_started) parts = kd_started + 1;
    long chunk = (n + parts - 1) / parts;
    pthread_mutex_lock(&kd_mu);
    kd_job_fn = fn; kd_job_ctx = ctx; kd_job_n = n; kd_job_chunk = chunk;
    kd_job_parts = parts;
    kd_pending = parts - 1;
    kd_generation++;
    pthread_cond_broadcast(&kd_wake);
    pthread_mutex_unlock(&kd_mu);
    fn(ctx, 0, chunk < n ? chunk : n);        // the caller runs chunk 0
    pthread_mutex_lock(&kd_mu);
    while (kd_pending > 0) pthread_cond_wait(&kd_done, &kd_mu);
    pthread_mutex_unlock(&kd_mu);
    pthread_mutex_unlock(&kd_call_mu);
}
