// swift-tools-version:6.0
// kdtrain: knowledge-distillation training of low-quality face recognition, data-parallel over MPI.
//
// Layout (one concern per target):
//   CMPI, COpenBLAS, CImage  system-library shims (OpenMPI, OpenBLAS, libjpeg-turbo + libpng)
//   KDCore                   what several modules share: atomic file writing, the PRNG, the checksum
//   CKernels                 hot C kernels (GEMM slicing, im2col, batch norm, pooling, elementwise) over OpenBLAS
//   CStop                    stop-signal flag (SIGTERM/SIGUSR1/SIGINT) polled at step boundaries
//   Model                    layers, losses, optimizer over one flat parameter store; knows nothing of MPI
//   Dist                     the only module that talks to MPI
//   FaceData                 synthetic faces, image folders, insightface .rec/.idx/.bin, degradations
//   Evaluation               the 10-fold verification protocol, TAR@FAR, ROC AUC, reports and charts
//   Pipeline                 run configuration, training loop, checkpoints, averaging, evaluation, ablation
//   KDTrainCLI               the `kdtrain` command line over Pipeline (a library, so tests parse command lines)
//   Launcher                 the `kdtrain` executable: calls KDTrainCLI
import PackageDescription

let optimize: [CSetting] = [.unsafeFlags(["-O3"])]

let package = Package(
    name: "kdtrain",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "kdtrain", targets: ["Launcher"]),
        .executable(name: "kdtrain-dist-harness", targets: ["DistHarness"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", exact: "1.8.2"),
    ],
    targets: [
        .systemLibrary(name: "CMPI", path: "Sources/CMPI", pkgConfig: "ompi-c",
                       providers: [.apt(["libopenmpi-dev"])]),
        .systemLibrary(name: "COpenBLAS", path: "Sources/COpenBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CImage", path: "Sources/CImage", pkgConfig: "libpng16",
                       providers: [.apt(["libturbojpeg0-dev", "libpng-dev"])]),
        .target(name: "KDCore", path: "Sources/KDCore"),
        .target(name: "CKernels", dependencies: ["COpenBLAS"], path: "Sources/CKernels", cSettings: optimize),
        .target(name: "CStop", path: "Sources/CStop"),
        .target(name: "Model", dependencies: ["COpenBLAS", "CKernels", "KDCore"], path: "Sources/Model"),
        .target(name: "Dist", dependencies: ["CMPI", "KDCore"], path: "Sources/Dist"),
        // Measurements of the distributed step (all-reduce sweep, overlap, weak scaling) over Dist's
        // public API, for `kdtrain bench --dist` and the harness; not part of the training path.
        .target(name: "DistBench", dependencies: ["Dist"], path: "Sources/DistBench"),
        // Runs kdtrain executables from tests, alone or under a real mpirun, with a hard timeout.
        .target(name: "TestSupport", path: "Sources/TestSupport"),
        // mpirun-driven checks and benchmarks of Dist, run by DistTests.
        .executableTarget(name: "DistHarness",
                          dependencies: ["Dist", "DistBench", "KDCore", .product(name: "ArgumentParser", package: "swift-argument-parser")],
                          path: "Sources/DistHarness"),
        .target(name: "FaceData", dependencies: ["CImage", "KDCore"], path: "Sources/FaceData"),
        .target(name: "Evaluation", dependencies: ["KDCore"], path: "Sources/Evaluation"),
        .target(name: "Pipeline", dependencies: ["Model", "Dist", "FaceData", "Evaluation", "KDCore", "CStop", "COpenBLAS"], path: "Sources/Pipeline"),
        // The command definitions, a library so that tests can parse command lines.
        .target(
            name: "KDTrainCLI",
            dependencies: ["Model", "Dist", "DistBench", "FaceData", "Pipeline", "KDCore", "CStop",
                           .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Sources/KDTrainCLI"),
        .executableTarget(name: "Launcher", dependencies: ["KDTrainCLI"], path: "Sources/Launcher"),
        // Counts heap allocations for the zero-allocation test (interposes malloc in the test process).
        .target(name: "AllocCounter", path: "Tests/AllocCounter"),
        .testTarget(name: "KDCoreTests", dependencies: ["KDCore"], path: "Tests/KDCoreTests"),
        .testTarget(name: "ModelTests", dependencies: ["Model", "KDCore", "AllocCounter"], path: "Tests/ModelTests",
                    resources: [.copy("Fixtures")]),
        .testTarget(name: "DistTests", dependencies: ["Dist", "KDCore", "TestSupport"], path: "Tests/DistTests"),
        .testTarget(name: "FaceDataTests", dependencies: ["FaceData", "KDCore"], path: "Tests/FaceDataTests",
                    resources: [.copy("Fixtures")]),
        .testTarget(name: "EvaluationTests", dependencies: ["Evaluation", "KDCore"], path: "Tests/EvaluationTests",
                    resources: [.copy("Fixtures")]),
        .testTarget(name: "PipelineTests", dependencies: ["Pipeline", "Model"], path: "Tests/PipelineTests"),
        // Parser entry points shared by the fuzz harness and the corpus replay test (not in the product).
        .target(name: "FuzzEntries", dependencies: ["FaceData", "Model", "Pipeline"], path: "Sources/FuzzEntries"),
        .testTarget(name: "FuzzTests", dependencies: ["FuzzEntries"], path: "Tests/FuzzTests"),
        .testTarget(name: "LauncherTests", dependencies: ["Model", "Pipeline", "Evaluation", "FaceData", "TestSupport", "KDTrainCLI",
                                                          .product(name: "ArgumentParser", package: "swift-argument-parser")],
                    path: "Tests/LauncherTests"),
    ]
)

// The libFuzzer harness over FuzzEntries, only when scripts/fuzz.sh builds it (KDTRAIN_FUZZ=1, with
// -sanitize=fuzzer,address and its own build folder): a normal build has no fuzzer runtime to link.
if Context.environment["KDTRAIN_FUZZ"] == "1" {
    package.targets += [
        .target(name: "CFuzzerDriver", path: "fuzz/Sources/CFuzzerDriver"),
        .executableTarget(name: "KDFuzz", dependencies: ["FuzzEntries", "CFuzzerDriver"], path: "fuzz/Sources/KDFuzz"),
    ]
}
