// `kdtrain pack`: writes insightface files without MXNet or Python.
//   kdtrain pack rec --folder PATH --output PATH/train.rec [--size 112] [--layout legacy|scalar] [--quality 95]
//                    [--strict] [--bycontent]
//     also writes insightface's `property` (classes,height,width) and labels.tsv next to the .rec; without
//     --size every image must have the same size.
//   kdtrain pack bin --pairs SOURCE --output PATH/name.bin [--size 112] [--quality 95 | --lossless]
//     without --size, images are kept as they are and a non-square one is refused; --lossless stores PNG,
//     so the .bin evaluates exactly like its source (JPEG moves accuracies by up to 2 points).
// SOURCE is a verification data-source string (pairs:LIST@ROOT, folder:PATH[;pairs=N;seed=S], bin:, synthetic:...).
import ArgumentParser
import FaceData

struct Pack: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pack",
        abstract: "Write insightface .rec/.idx training sets and .bin verification sets.",
        subcommands: [Rec.self, Bin.self])

    struct Rec: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rec", abstract: "Write .rec + .idx from an image folder (one sub-folder per identity).")
        @Option(help: "Image folder, one sub-folder per identity.") var folder: String
        @Option(help: "Output .rec path; the .idx is written next to it.") var output: String
        @Option(help: "legacy (header record 0, identity records; what faces_webface uses) or scalar (keys 0..N-1).")
        var layout: String = "legacy"
        @Option(help: "JPEG quality for images that are not already JPEG.") var quality: Int = 95
        @Option(help: "Resize every image to SIZE x SIZE (stretching; default: keep, which needs one size for all images).")
        var size: Int?
        @Flag(help: "Fail on the first unreadable image instead of skipping it (other files are only ignored).") var strict = false
        @Flag(help: "Read every file by content instead of only .jpg/.jpeg/.png/.pgm/.ppm/.pnm files.") var bycontent = false
        @Option(help: "Decoding threads.") var threads: Int = 2

        func validate() throws {
            guard RecordSet.Layout(rawValue: layout) != nil else { throw ValidationError("--layout must be legacy or scalar") }
            guard (1...100).contains(quality) else { throw ValidationError("--quality must be in 1...100") }
            guard output.hasSuffix(".rec") else { throw ValidationError("--output must end in .rec") }
            if let s = size { guard (8...1024).contains(s) else { throw ValidationError("--size must be in 8...1024") } }
        }

        func run() throws {
            let f = try ImageFolder(root: folder, strict: strict, byContent: bycontent, threads: threads)
            print(f.scanReport(), terminator: "")
            print(try Packer.rec(from: f, to: output, layout: RecordSet.Layout(rawValue: layout)!, quality: quality, size: size))
        }
    }

    struct Bin: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "bin", abstract: "Write an insightface .bin verification set from a pairs source.")
        @Option(help: "Verification source: pairs:LIST@ROOT, folder:PATH[;pairs=N;seed=S], bin:PATH or synthetic[:...].")
        var pairs: String
        @Option(help: "Output .bin path.") var output: String
        @Option(help: "Resize every image to SIZE x SIZE before encoding (default: keep; non-square images are then refused).") var size: Int?
        @Option(help: "JPEG quality (default 95).") var quality: Int?
        @Flag(help: "Store every image as PNG instead of JPEG: the .bin then evaluates exactly like its source (JPEG moves accuracies by up to 2 points). insightface's loaders (mx.image.imdecode, cv2.imdecode) read PNG too.")
        var lossless = false

        func validate() throws {
            if let q = quality {
                guard !lossless else { throw ValidationError("--quality is for JPEG; --lossless writes PNG (give one of them)") }
                guard (1...100).contains(q) else { throw ValidationError("--quality must be in 1...100") }
            }
            if let s = size { guard (8...1024).contains(s) else { throw ValidationError("--size must be in 8...1024") } }
        }

        func run() throws {
            let p = try DataSource(parsing: pairs).pairSet()
            print(try Packer.bin(from: p, to: output, quality: quality ?? 95, size: size, lossless: lossless))
        }
    }
}
