// swift-tools-version:6.0
// kdtrain: knowledge-distillation training of low-quality face recognition, data-parallel over MPI.
//
// Layout (one concern per target):
//   CMPI, COpenBLAS, CImage  system-library shims (OpenMPI, OpenBLAS, libjpeg-turbo + libpng)
//   CKernels                 hot C kernels (im2col, batch norm, pooling, elementwise), no dependencies
//   Model                    layers, losses, optimizer over one flat parameter store; knows nothing of MPI
//   Dist                     the only module that talks to MPI
//   FaceData                 synthetic faces, image folders, insightface .rec/.idx/.bin, degradations
//   Evaluation               the 10-fold verification protocol, TAR@FAR, ROC AUC, reports and charts
//   Pipeline                 run configuration, training loop, checkpoints, averaging, evaluation, ablation
//   Launcher                 the `kdtrain` command line over Pipeline
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
        .target(name: "CKernels", dependencies: ["COpenBLAS"], path: "Sources/CKernels", cSettings: optimize),
        .target(name: "Model", dependencies: ["COpenBLAS", "CKernels"], path: "Sources/Model"),
        .target(name: "Dist", dependencies: ["CMPI"], path: "Sources/Dist"),
        // mpirun-driven checks and benchmarks for Dist (run by DistTests, exposed for `kdtrain bench`).
        .target(name: "TestSupport", path: "Sources/TestSupport"),
        .executableTarget(name: "DistHarness", dependencies: ["Dist"], path: "Sources/DistHarness"),
        .target(name: "FaceData", dependencies: ["CImage"], path: "Sources/FaceData"),
        .target(name: "Evaluation", path: "Sources/Evaluation"),
        .target(name: "Pipeline", dependencies: ["Model", "Dist", "FaceData", "Evaluation", "CKernels", "COpenBLAS"], path: "Sources/Pipeline"),
        .executableTarget(
            name: "Launcher",
            dependencies: ["Model", "Dist", "FaceData", "Evaluation", "Pipeline", "CKernels",
                           .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Sources/Launcher"),
        // Counts heap allocations for the zero-allocation test (interposes malloc in the test process).
        .target(name: "AllocCounter", path: "Tests/AllocCounter"),
        .testTarget(name: "ModelTests", dependencies: ["Model", "AllocCounter"], path: "Tests/ModelTests",
                    resources: [.copy("Fixtures")]),
        .testTarget(name: "DistTests", dependencies: ["Dist", "TestSupport"], path: "Tests/DistTests"),
        .testTarget(name: "FaceDataTests", dependencies: ["FaceData"], path: "Tests/FaceDataTests",
                    resources: [.copy("Fixtures")]),
        .testTarget(name: "EvaluationTests", dependencies: ["Evaluation"], path: "Tests/EvaluationTests",
                    resources: [.copy("Fixtures")]),
        .testTarget(name: "PipelineTests", dependencies: ["Pipeline", "Model"], path: "Tests/PipelineTests"),
        .testTarget(name: "LauncherTests", dependencies: ["Model", "Pipeline", "Evaluation", "FaceData", "TestSupport"], path: "Tests/LauncherTests"),
    ]
)
