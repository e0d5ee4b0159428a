// Counts heap allocations made by any thread of this process while counting is on (tests only).
#ifndef KDTRAIN_ALLOC_COUNTER_H
#define KDTRAIN_ALLOC_COUNTER_H
/// Starts counting from zero.
void kd_alloc_count_start(void);
/// Stops counting; returns the allocations (malloc, calloc, realloc, memalign family) made since start.
long kd_alloc_count_stop(void);
#endif
