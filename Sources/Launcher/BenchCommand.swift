// `kdtrain bench`: throughput of the full distillation step, split by phase and layer kind,
// next to the machine's sgemm peak measured in the same run.
import ArgumentParser
import Foundation
import Model

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure the distillation step (images/s, GFLOP/s by phase and layer kind) and sgemm peak.")

    @Option(help: "Student preset (\(NetworkConfig.presets.keys.sorted().joined(separator: ", "))).")
    var preset = "small"
    @Option(help: "Teacher preset (default: small-teacher for small, else the student preset).")
    var teacher: String?
    @Option(help: "Images per step.")
    var batch = 64
    @Option(help: "Timed steps (after 2 warm-up steps).")
    var steps = 10
    @Option(help: "Compute threads (OpenBLAS + kernels); default: all cores.")
    var threads: Int?
    @Option(help: "Classes of the margin head.")
    var classes = 1000
    @Flag(help: "Print one JSON object instead of the table.")
    var json = false

    func validate() throws {
        guard NetworkConfig.presets[preset] != nil else { throw ValidationError("--preset: unknown preset '\(preset)'") }
        if let t = teacher, NetworkConfig.presets[t] == nil { throw ValidationError("--teacher: unknown preset '\(t)'") }
        guard batch >= 2 else { throw ValidationError("--batch must be >= 2 (batch norm needs 2 samples)") }
        guard steps >= 1 else { throw ValidationError("--steps must be >= 1") }
        guard classes >= 2 else { throw ValidationError("--classes must be >= 2") }
        if let t = threads, t < 1 { throw ValidationError("--threads must be >= 1") }
    }

    func run() throws {
        let nThreads = threads ?? ProcessInfo.processInfo.activeProcessorCount
        Compute.setThreads(nThreads)
        let report = try BenchReport.measure(student: preset, teacher: teacher ?? (preset == "small" ? "small-teacher" : preset),
                                             batch: batch, steps: steps, classes: classes, threads: nThreads)
        print(json ? report.json : report.table)
    }
}

struct BenchReport {
    var student: String, teacher: String, batch: Int, steps: Int, threads: Int, blasCore: String
    var sgemmPeak: Double
    var phases: [(String, Double)]        // seconds per step
    var kinds: [(String, Double)]         // seconds per step (student forward+backward by layer kind)
    var stepSeconds: Double
    var flopsPerStep: Double

    var imagesPerSecond: Double { Double(batch) / stepSeconds }
    var gflops: Double { flopsPerStep / stepSeconds / 1e9 }

    static func measure(student: String, teacher: String, batch: Int, steps: Int, classes: Int, threads: Int) throws -> BenchReport {
        let sc = NetworkConfig.presets[student]!, tc = NetworkConfig.presets[teacher]!
        let peak = Compute.sgemmPeak()
        let s = FaceModel(config: sc, classes: classes, margin: .arcFace(s: 64, m: 0.5), seed: 1, trainable: true)
        let t = FaceModel(config: tc, classes: classes, margin: .arcFace(s: 64, m: 0.5), seed: 2, trainable: false)
        var loss = LossConfig()
        loss.recognition = 1; loss.kd = 1; loss.temperature = 4
        loss.attentionSimilarity = 1; loss.attentionTransfer = 50
        loss.attention = AttentionDistillConfig(stages: Array(0..<sc.depths.count),
                                                channel: zip(sc.widths, tc.widths).allSatisfy { $0 == $1 })
        let problems = DistillationStep.compatibilityProblems(student: sc, teacher: tc, studentClasses: classes,
                                                              teacherClasses: classes, loss: loss)
        guard problems.isEmpty else { throw ValidationError("bench: " + problems.joined(separator: "; ")) }
        let step = DistillationStep(student: s, teacher: t, loss: loss)
        step.plan(batch: batch)
        let sgd = SGD(store: s.store, config: SGDConfig())
        var rng = SplitMix64(seed: 3)
        let img = (0..<(batch * 3 * sc.inputSize * sc.inputSize)).map { _ in Float(rng.nextUnit()) * 2 - 1 }
        let labels = (0..<batch).map { _ in Int32(rng.next() % UInt64(classes)) }
        img.withUnsafeBufferPointer { s.net.input.loadNCHW($0.baseAddress!); t.net.input.loadNCHW($0.baseAddress!) }
        let prof = Profiler()
        var phase: [String: Double] = [:]
        for i in 0..<(steps + 2) {
            if i == 2 { phase = [:]; prof.reset(); s.net.profiler = prof }
            let t0 = Profiler.now()
            step.teacherForward()
            let t1 = Profiler.now()
            s.store.zeroGrad()
            _ = labels.withUnsafeBufferPointer { step.studentForwardBackward(labels: $0.baseAddress!) }
            let t2 = Profiler.now()
            sgd.step(lr: 0.01)
            let t3 = Profiler.now()
            phase["teacher forward (HR)", default: 0] += t1 - t0
            phase["student forward+losses+backward (LR)", default: 0] += t2 - t1
            phase["optimizer (SGD)", default: 0] += t3 - t2
        }
        let total = phase.values.reduce(0, +) / Double(steps)
        // FLOP convention: forward F per image; backward 2F (input and weight gradients).
        let flops = Double(batch) * (tc.forwardFLOPs + 3 * sc.forwardFLOPs)
        let order = ["teacher forward (HR)", "student forward+losses+backward (LR)", "optimizer (SGD)"]
        return BenchReport(student: student, teacher: teacher, batch: batch, steps: steps, threads: threads,
                           blasCore: Compute.blasCore, sgemmPeak: peak,
                           phases: order.map { ($0, phase[$0]! / Double(steps)) },
                           kinds: prof.seconds.sorted { $0.value > $1.value }.map { ($0.key.rawValue, $0.value / Double(steps)) },
                           stepSeconds: total, flopsPerStep: flops)
    }

    var table: String {
        func f(_ x: Double, _ d: Int = 1) -> String { String(format: "%.\(d)f", x) }
        var lines = [
            "kdtrain bench: student \(student), teacher \(teacher), batch \(batch), \(steps) steps, \(threads) thread(s), OpenBLAS core \(blasCore)",
            "sgemm peak (2048^3, same threads): \(f(sgemmPeak)) GFLOP/s",
            "step: \(f(stepSeconds * 1000)) ms  \(f(imagesPerSecond)) images/s  \(f(gflops)) GFLOP/s achieved (\(f(100 * gflops / sgemmPeak))% of sgemm peak)",
            "  FLOPs/step \(f(flopsPerStep / 1e9, 2)) G = batch x (teacher fwd + 3 x student fwd), conv + linear",
            "by phase (ms/step):",
        ]
        for (k, v) in phases { lines.append("  \(k.padding(toLength: 40, withPad: " ", startingAt: 0)) \(f(v * 1000, 2))") }
        lines.append("student forward+backward by layer kind (ms/step):")
        for (k, v) in kinds { lines.append("  \(k.padding(toLength: 40, withPad: " ", startingAt: 0)) \(f(v * 1000, 2))") }
        return lines.joined(separator: "\n")
    }

    var json: String {
        var o: [String: Any] = ["student": student, "teacher": teacher, "batch": batch, "steps": steps, "threads": threads,
                                "blas_core": blasCore, "sgemm_peak_gflops": sgemmPeak, "step_seconds": stepSeconds,
                                "images_per_second": imagesPerSecond, "gflops": gflops, "flops_per_step": flopsPerStep]
        o["phases_seconds"] = Dictionary(uniqueKeysWithValues: phases)
        o["kinds_seconds"] = Dictionary(uniqueKeysWithValues: kinds)
        let d = try! JSONSerialization.data(withJSONObject: o, options: [.sortedKeys])
        return String(decoding: d, as: UTF8.self)
    }
}
