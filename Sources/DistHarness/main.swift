// kdtrain-dist-harness: the mpirun-driven checks behind DistTests and the distributed benchmark.
// This file is only the entry point; the command line is in Commands.swift.
//
//   mpirun -n 4 --oversubscribe kdtrain-dist-harness collectives
//   mpirun -n 2 kdtrain-dist-harness equivalence [--steps 40] [--global-batch 24] [--micro 1] [--overlap 1|0]
//                                                [--bn sync|local|none]
//   mpirun -n 4 --oversubscribe kdtrain-dist-harness sampler [--epochs 3]
//   mpirun -n 2 kdtrain-dist-harness fail [--rank 1] [--kind swift|truncate]
//   mpirun -n 4 --oversubscribe kdtrain-dist-harness diverge [--rank R]
//   mpirun -n 2 kdtrain-dist-harness stall [--rank R] [--step 5] [--how stop|sleep|none] [--timeout 3]
//                                          [--steps N] [--sample 1.5] [--params N] [--late R --late-ms T]
//   kdtrain-dist-harness info                       (singleton, world of one)
//   mpirun -n 2 kdtrain-dist-harness bench [--params N] [--layers L] [--backward-ms T] [--forward-ms T]
//                                          [--iterations N] [--max-floats N] [--bucket N] [--first-bucket N]
//                                          [--layer-units U] [--forward-units U]
//   kdtrain-dist-harness --help, kdtrain-dist-harness <mode> --help   (every option, its default and meaning)
//
// Each check prints "OK <mode> ..." on rank 0 and exits 0, or ends through the same path the
// Launcher uses: any error reaching the top level aborts the whole job with "rank R: message".
// A usage error (unknown mode or option, bad value) is one message from rank 0 and a non-zero
// exit, before MPI is initialized.

DistHarness.runMain()
