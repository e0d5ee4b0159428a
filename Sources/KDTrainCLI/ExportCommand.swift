// `kdtrain export`: a checkpoint's embedding network as an ONNX model (see Sources/Pipeline/OnnxExport.swift).
//   kdtrain export --format onnx CHECKPOINT -o OUT.onnx [--fold-bn] [--quiet]
// Every problem (option, checkpoint, output) is one line naming it and exit 1; nothing is written then.
import ArgumentParser
import Foundation
import Pipeline

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Export a checkpoint's embedding network (inference mode) as an ONNX model.",
        discussion: """
        ONNX opset \(OnnxExport.opset): input '\(OnnxExport.inputName)' (N, C, S, S) float, NCHW, dynamic batch N; \
        output '\(OnnxExport.outputName)' (N, E), the raw embedding kdtrain computes (not normalized). Batch norm \
        stays as BatchNormalization nodes with the running statistics, or with --fold-bn is folded into the \
        adjacent Conv/Gemm weights. The preprocessing the checkpoint records (input size, (x/255 - mean)/std, \
        RGB, resize kernel) is in the model's metadata_props. The file is written atomically.
        """)

    @Argument(help: ArgumentHelp("Checkpoint (.safetensors) whose 'model' metadata describes the network.", valueName: "checkpoint"))
    var checkpoint: String?
    @Option(name: [.customShort("o"), .customLong("output")], help: ArgumentHelp("Output file (.onnx); an existing file is replaced.", valueName: "path"))
    var output: String?
    @Option(help: ArgumentHelp("Export format; only onnx.", valueName: "onnx"))
    var format = "onnx"
    @Flag(name: .customLong("fold-bn"), help: "Fold batch normalization into the adjacent Conv/Gemm weights (no BatchNormalization nodes).")
    var foldBN = false
    @Flag(help: "Print only errors.")
    var quiet = false

    /// The options, checked; every mistake is one line naming the option or file.
    func checked() throws -> (checkpoint: String, output: String) {
        guard format == "onnx" else { throw ConfigError("export: --format '\(format)' is not supported (only onnx)") }
        guard let checkpoint, !checkpoint.isEmpty else { throw ConfigError("export: the CHECKPOINT argument is required") }
        guard let output, !output.isEmpty else { throw ConfigError("export: -o OUT.onnx is required") }
        try checkOutputPath(output, option: "-o", command: "export")
        return (checkpoint, output)
    }

    func run() throws {
        do {
            let a = try checked()
            let s = try OnnxExport.export(checkpoint: a.checkpoint, to: a.output, foldBN: foldBN)
            if !quiet {
                let bn = foldBN ? "batch norm folded" : "\(s.opCounts["BatchNormalization", default: 0]) BatchNormalization nodes"
                print("export: wrote \(a.output): ONNX opset \(OnnxExport.opset), \(s.nodes) nodes (\(bn)), \(s.initializers) initializers, \(s.parameters) parameters, \(s.bytes) bytes")
            }
        } catch {
            FileHandle.standardError.write(Data("kdtrain: \(error)\n".utf8))
            throw ExitCode.failure
        }
    }
}
