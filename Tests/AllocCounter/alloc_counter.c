// Heap-allocation counter for the zero-allocation test of the steady-state step. Linked into the
// test executable, these definitions interpose the C allocator for the whole process and forward
// to glibc's own entry points (so free, which is not interposed, stays consistent); while counting
// is on every allocation call from any thread is counted. Swift allocations go through malloc or
// posix_memalign, the worker pool's and OpenBLAS's too.
#define _GNU_SOURCE
#include "alloc_counter.h"
#include <stdatomic.h>
#include <stddef.h>
#include <errno.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);

static atomic_int counting;
static atomic_long count;

static inline void note(void) { if (atomic_load_explicit(&counting, memory_order_relaxed)) atomic_fetch_add(&count, 1); }

void kd_alloc_count_start(void) { atomic_store(&count, 0); atomic_store(&counting, 1); }
long kd_alloc_count_stop(void) { atomic_store(&counting, 0); return atomic_load(&count); }

void *malloc(size_t n) { note(); return __libc_malloc(n); }
void *calloc(size_t k, size_t n) { note(); return __libc_calloc(k, n); }
void *realloc(void *p, size_t n) { note(); return __libc_realloc(p, n); }
void *memalign(size_t a, size_t n) { note(); return __libc_memalign(a, n); }
void *aligned_alloc(size_t a, size_t n) { note(); return __libc_memalign(a, n); }
int posix_memalign(void **out, size_t a, size_t n) {
    note();
    if (a < sizeof(void *) || (a & (a - 1)) != 0) return EINVAL;
    void *p = __libc_memalign(a, n);
    if (!p && n) return ENOMEM;
    *out = p;
    return 0;
}
