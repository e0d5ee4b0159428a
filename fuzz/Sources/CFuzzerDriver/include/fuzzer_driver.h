// libFuzzer's entry for programs that have their own main (compiler-rt, FuzzerInterface.h).
#ifndef KDTRAIN_FUZZER_DRIVER_H
#define KDTRAIN_FUZZER_DRIVER_H
#include <stddef.h>
#include <stdint.h>
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*user_callback)(const uint8_t *data, size_t size));
#endif
