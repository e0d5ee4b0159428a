// `kdtrain bench`: throughput of the full distillation step, split by phase and layer kind,
// next to the machine's sgemm peak measured in the same run.
import ArgumentParser
import Dist
import DistBench
import FaceData
import Foundation
import Model
import KDCore

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
    @Option(help: "Also measure the data loader on this source for ~2 s (e.g. synthetic).")
    var loader: String?
    @Flag(help: "Distributed mode (run under mpirun -n N): all-reduce time against message size, the share of all-reduce time hidden behind the real backward, and the step time for weak scaling.")
    var dist = false

    func validate() throws {
        guard NetworkConfig.presets[preset] != nil else { throw ValidationError("--preset: unknown preset '\(preset)'") }
        if let t = teacher, NetworkConfig.presets[t] == nil { throw ValidationError("--teacher: unknown preset '\(t)'") }
        guard batch >= 2 else { throw ValidationError("--batch must be >= 2 (batch norm needs 2 samples)") }
        guard steps >= 1 else { throw ValidationError("--steps must be >= 1") }
        guard classes >= 2 else { throw ValidationError("--classes must be >= 2") }
        if let t = threads, t < 1 { throw ValidationError("--threads must be >= 1") }
    }

    func run() throws {
        if dist { return try runDistributed() }
        let nThreads = threads ?? ProcessInfo.processInfo.activeProcessorCount
        Compute.setThreads(nThreads)
        if let spec = loader {
            let side = NetworkConfig.presets[preset]!.inputSize
            let src = try DataSource(parsing: spec).trainingSet(threads: nThreads)
            let r = try LoaderBenchmark.run(source: src, config: BatchConfig(height: side, width: side, threads: nThreads),
                                            batch: batch, seconds: 2)
            print("\(spec) at \(side)x\(side), both views: \(r)")
        }
        let report = try BenchReport.measure(student: preset, teacher: teacher ?? (preset == "small" ? "small-teacher" : preset),
                                             batch: batch, steps: steps, classes: classes, threads: nThreads)
        print(json ? report.json : report.table)
    }
}

extension Bench {
    /// `mpirun -n N kdtrain bench --dist`: collective figures on every rank, printed by rank 0.
    func runDistributed() throws {
        let comm = try Communicator()
        Compute.setThreads(threads ?? comm.recommendedThreads())
        do {
            let sc = NetworkConfig.presets[preset]!, tc = NetworkConfig.presets[teacher ?? (preset == "small" ? "small-teacher" : preset)]!
            let out = comm.isRoot
            if out { print("kdtrain bench --dist: \(comm.size) rank(s), \(Compute.threads) thread(s) each, OpenBLAS core \(Compute.blasCore)") }
            let sizes = [1 << 10, 1 << 12, 1 << 14, 1 << 16, 1 << 18, 1 << 20, 1 << 22, 1 << 24]
            let sweep = try DistBenchmark.allReduceSweep(comm, sizes: sizes, iterations: 8)
            if out {
                print("all-reduce (in place, sum), median of 8:")
                for p in sweep {
                    print(String(format: "  %9d floats %10.1f KiB  %9.3f ms  bus %.2f GB/s", p.floats, Double(p.bytes) / 1024, p.seconds * 1000, p.busGBs))
                }
            }
            // The real distillation step of this preset at the per-rank batch.
            let s = FaceModel(config: sc, classes: classes, margin: .arcFace(s: 64, m: 0.5), seed: 1, trainable: true)
            let t = FaceModel(config: tc, classes: classes, margin: .arcFace(s: 64, m: 0.5), seed: 2, trainable: false)
            var loss = LossConfig()
            loss.kd = 1; loss.attentionSimilarity = 1
            loss.attention = AttentionDistillConfig(stages: Array(0..<sc.depths.count), channel: sc.widths == tc.widths)
            let step = DistillationStep(student: s, teacher: t, loss: loss)
            step.plan(batch: batch)
            var rng = SplitMix64(seed: 3 &+ UInt64(comm.rank))
            let img = (0..<(batch * 3 * sc.inputSize * sc.inputSize)).map { _ in Float(rng.nextUnit()) * 2 - 1 }
            let labels = (0..<batch).map { _ in Int32(rng.next() % UInt64(classes)) }
            img.withUnsafeBufferPointer { s.net.input.loadNCHW($0.baseAddress!); t.net.input.loadNCHW($0.baseAddress!) }
            step.teacherForward()
            let options = ReducerOptions()
            let ov = try DistBenchmark.overlap(comm, gradients: s.store.grads, count: s.store.paramCount, options: options,
                                                iterations: steps) { reducer in
                s.store.zeroGrad()
                var failure: Error?
                _ = labels.withUnsafeBufferPointer { lb in
                    step.studentForwardBackward(labels: lb.baseAddress!, ready: { off in
                        do { try reducer?.gradientsReady(from: off) } catch { failure = failure ?? error }
                    })
                }
                if let failure { throw failure }
            }
            let sgd = SGD(store: s.store, config: SGDConfig())
            let reducer = try GradientReducer(communicator: comm, gradients: s.store.grads, count: s.store.paramCount, options: options)
            let stepSeconds = try DistBenchmark.stepTime(comm, iterations: steps) {
                step.teacherForward()
                s.store.zeroGrad()
                var failure: Error?
                _ = labels.withUnsafeBufferPointer { lb in
                    step.studentForwardBackward(labels: lb.baseAddress!, ready: { off in
                        do { try reducer.gradientsReady(from: off) } catch { failure = failure ?? error }
                    })
                }
                if let failure { throw failure }
                try reducer.finish()
                sgd.step(lr: 0.01)
            }
            if out {
                print(String(format: "gradients: %d floats (%.1f MiB) in %d bucket(s)", ov.floats, Double(ov.floats) * 4 / 1048576, ov.buckets))
                print(String(format: "student forward+backward %.1f ms, blocking all-reduce %.1f ms, sequential %.1f ms, overlapped %.1f ms",
                             ov.computeSeconds * 1000, ov.allReduceSeconds * 1000, ov.sequentialSeconds * 1000, ov.overlappedSeconds * 1000))
                print(String(format: "all-reduce hidden behind backward: %.0f%% (median), %.0f%% (best iterations); exposed in finish(): %.0f%%",
                             ov.hiddenFraction * 100, ov.hiddenFractionBest * 100, ov.exposedFraction * 100))
                print(String(format: "full distillation step (%@ student, %@ teacher, %d images per rank): %.1f ms, %.1f images/s per rank, %.1f images/s in all",
                             preset, teacher ?? (preset == "small" ? "small-teacher" : preset), batch, stepSeconds * 1000,
                             Double(batch) / stepSeconds, Double(batch * comm.size) / stepSeconds))
                print("weak scaling: compare this step time with `mpirun -n 1 kdtrain bench --dist` at the same --batch and --threads (efficiency = t1 / tN)")
            }
            try comm.finalize()
        } catch {
            if comm.size > 1 { comm.abortJob(message: "kdtrain bench: \(error)") }
            throw error
        }
    }
}

struct BenchReport {
    var student: String, teacher: String, batch: Int, steps: Int, threads: Int, blasCore: String
    var sgemmPeak: Double
    var phases: [(String, Double)]        // seconds per step
    var kinds: [(String, Double)]         // seconds per step (student forward+backward by layer kind)
    var stepSeconds: Double
    var flopsPerStep: Double
    /// Bytes: planned activation buffers (values, gradients, scratch) of each network, and
    /// parameters (student: values, gradients, momentum; teacher: values).
    var memory: (student: Double, teacher: Double, parameters: Double)

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
        let m0 = ActivationMemory.bytes
        s.plan(batch: batch, needsGrad: true)
        let m1 = ActivationMemory.bytes
        step.plan(batch: batch)
        let memory = (student: Double(m1 - m0), teacher: Double(ActivationMemory.bytes - m1),
                      parameters: Double(4 * (3 * s.store.paramCount + t.store.paramCount)))
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
                           stepSeconds: total, flopsPerStep: flops, memory: memory)
    }

    var table: String {
        func f(_ x: Double, _ d: Int = 1) -> String { String(format: "%.\(d)f", x) }
        var lines = [
            "kdtrain bench: student \(student), teacher \(teacher), batch \(batch), \(steps) steps, \(threads) thread(s), OpenBLAS core \(blasCore)",
            "sgemm peak (2048^3, same threads): \(f(sgemmPeak)) GFLOP/s",
            "step: \(f(stepSeconds * 1000)) ms  \(f(imagesPerSecond)) images/s  \(f(gflops)) GFLOP/s achieved (\(f(100 * gflops / sgemmPeak))% of sgemm peak)",
            "  FLOPs/step \(f(flopsPerStep / 1e9, 2)) G = batch x (teacher fwd + 3 x student fwd), conv + linear",
            "memory (MB): student activations \(f(memory.student / 1e6, 0)), teacher activations \(f(memory.teacher / 1e6, 0)), parameters \(f(memory.parameters / 1e6, 0))",
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
        o["memory_bytes"] = ["student_activations": memory.student, "teacher_activations": memory.teacher,
                             "parameters": memory.parameters]
        o["phases_seconds"] = Dictionary(uniqueKeysWithValues: phases)
        o["kinds_seconds"] = Dictionary(uniqueKeysWithValues: kinds)
        let d = try! JSONSerialization.data(withJSONObject: o, options: [.sortedKeys])
        return String(decoding: d, as: UTF8.self)
    }
}
