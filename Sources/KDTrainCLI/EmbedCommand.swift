// `kdtrain embed`: embeddings of a data source at a degradation factor, for other frameworks.
//   kdtrain embed --checkpoint CK --data SOURCE --output OUT.safetensors [--factor F] [--flip sum|none|both]
//                 [--normalize] [--pixels] [--npy] [--config FILE] [--set key=value ...]
// Every option is checked before any work; a mistake is one line naming the option and exit 1.
import ArgumentParser
import Dist
import FaceData
import Foundation
import Model
import Pipeline

struct Embed: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Embeddings of a folder, .rec, .bin, pairs list or synthetic pairs at a degradation factor, as safetensors (and .npy).",
        discussion: """
        The network input of each image is made by the evaluation's own code (data.resize to the network \
        input, down-sampling by --factor with eval.down and up-sampling with eval.up, eval.blur, \
        normalization (x/255 - 0.5)/0.5, RGB, NCHW), so embeddings compared pairwise reproduce the distances of \
        `kdtrain evaluate` with the same checkpoint, data and --set options. Sources: folder:PATH (every image, \
        with labels), rec:PATH (every record), or pairs, whose 2P images come in evaluation order (rows 2i and \
        2i+1 are pair i): folder:PATH;pairs=N, bin:PATH, pairs:LIST@ROOT, synthetic[:...]. For pairs, \
        eval.degrade=probe (the default) degrades only the second image of each pair, as evaluation does; \
        --set eval.degrade=both degrades every image. Tensors: embeddings (N, E); with --flip both also \
        embeddings_noflip and embeddings_mirror; labels (N) or issame (P); with --pixels the network inputs \
        pixels (and pixels_mirror) (N, 3, S, S). Image names are in the metadata ('names', a JSON array). \
        Under mpirun the images are sharded over the ranks and rank 0 writes the file.
        """)

    @Option(help: ArgumentHelp("Checkpoint to embed with (teacher, student or averaged); its 'model' metadata builds the network.", valueName: "path"))
    var checkpoint: String?
    @Option(help: ArgumentHelp("Images: folder:PATH, rec:PATH, folder:PATH;pairs=N, bin:PATH, pairs:LIST@ROOT or synthetic[:...] (see README, Data).", valueName: "source"))
    var data: String?
    @Option(help: ArgumentHelp("Output file, ending in .safetensors; written atomically (an existing file is replaced).", valueName: "path"))
    var output: String?
    @Option(help: ArgumentHelp("Degradation factor 1...\(Embedder.maxFactor): down-sample by F and up-sample back, as evaluate does at xF (1 = none).", valueName: "F"))
    var factor = "1"
    @Option(help: ArgumentHelp("sum: embedding of the image plus that of its mirror (evaluation's flip test); none: the image alone; both: the sum plus both views.", valueName: "sum|none|both"))
    var flip = "sum"
    @Flag(help: "L2-normalize every row (in float64, as evaluation does before the distances).")
    var normalize = false
    @Flag(help: "Also write the exact network input of every image (pixels, and pixels_mirror unless --flip none).")
    var pixels = false
    @Flag(help: "Also write every tensor as OUTPUT-BASE.<tensor>.npy and the names as OUTPUT-BASE.names.npy.")
    var npy = false
    @Option(help: "JSON configuration file (eval.* and data.resize/threads apply); command-line --set wins.")
    var config: String?
    @Option(name: .customLong("set"), help: ArgumentHelp("Override one option: section.key=value (repeatable), e.g. --set eval.down=area.", valueName: "key=value"))
    var overrides: [String] = []
    @Flag(help: "Print only errors.")
    var quiet = false

    /// The options, checked; every mistake is one line naming the option.
    func checked() throws -> (checkpoint: String, source: DataSource, output: String, options: Embedder.Options) {
        guard let checkpoint, !checkpoint.isEmpty else { throw ConfigError("embed: --checkpoint PATH is required") }
        guard let data, !data.isEmpty else { throw ConfigError("embed: --data SOURCE is required (folder:PATH, rec:PATH, bin:PATH, pairs:LIST@ROOT, synthetic)") }
        guard let output, !output.isEmpty else { throw ConfigError("embed: --output PATH.safetensors is required") }
        guard let f = Int(factor), (1...Embedder.maxFactor).contains(f) else {
            throw ConfigError("embed: --factor '\(factor)' must be a whole number in 1...\(Embedder.maxFactor)")
        }
        guard let fl = Embedder.Flip(rawValue: flip) else { throw ConfigError("embed: --flip '\(flip)' must be sum, none or both") }
        guard output.hasSuffix(".safetensors"), output.count > ".safetensors".count else {
            throw ConfigError("embed: --output '\(output)' must end in .safetensors")
        }
        try checkOutputPath(output, option: "--output", command: "embed")
        let source: DataSource
        do { source = try DataSource(parsing: data) } catch { throw ConfigError("embed: --data: \(error)") }
        return (checkpoint, source, output, Embedder.Options(factor: f, flip: fl, normalize: normalize, pixels: pixels))
    }

    func run() throws {
        let args: (checkpoint: String, source: DataSource, output: String, options: Embedder.Options)
        do { args = try checked() } catch {
            // Checked before MPI starts, alike on every rank: only the first rank of a job prints.
            if launcherRank() == 0 { FileHandle.standardError.write(Data("kdtrain: \(error)\n".utf8)) } else { usleep(1_000_000) }
            throw ExitCode.failure
        }
        try withJob(config: config, overrides: overrides, stopNote: "nothing was written", validateForRanks: 1) { comm, cfg in
            // Every rank reads the checkpoint and opens the images: a bad one is one agreed failure.
            let (c, m, images) = try comm.agree { () throws -> (Checkpoint.Contents, FaceModel, EmbeddingImages) in
                let c = try Checkpoint.read(args.checkpoint)
                guard c.identity.network.inputChannels == 3 else {
                    throw CheckpointError(c.path, "its model takes \(c.identity.network.inputChannels) input channels; kdtrain's images have 3 (RGB)")
                }
                let m = FaceModel(config: c.identity.network, classes: c.identity.classes, margin: cfg.marginKind, seed: 0, trainable: false)
                try Checkpoint.load(c, into: m.store, identity: c.identity, momentum: false)
                return (c, m, try EmbeddingImages(source: args.source, threads: cfg.data.threads))
            }
            if comm.isRoot && !quiet, let p = c.preprocessing, p.resize != cfg.data.resize.rawValue {
                print("embed: note: \(c.path) was trained with data.resize=\(p.resize); embedding with data.resize=\(cfg.data.resize) (as evaluate would); add --set data.resize=\(p.resize) to match training")
            }
            guard let out = try Embedder.run(comm: comm, config: cfg, checkpoint: c, model: m, images: images, options: args.options) else {
                return true
            }
            let files = try Embedder.write(out, to: args.output, npy: npy)
            if !quiet { print("embed: wrote \(files.joined(separator: ", ")): \(out.summary)") }
            return true
        }
    }
}
