// Raw array export, for checking a data source with another framework (scripts/data_learnability.py).
import Foundation
import KDCore

public enum RawExport {
    /// Writes, atomically, little-endian raw arrays to `dir`:
    /// - train.f32 (N, 3, H, W) teacher views of training samples 0..<N (epoch 0, `config`'s augmentation),
    ///   train.i32 (N) their labels, with N = min(limit, training.count);
    /// - pairs_x<F>.f32 (2P, 3, H, W) pair images degraded at each factor F, issame.u8 (P).
    /// - Returns: a one-line summary.
    @discardableResult
    public static func write(training: any TrainingSet, pairs: any PairSet, config: BatchConfig,
                             factors: [Float], limit: Int = .max, to dir: String) throws -> String {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let n = min(limit, training.count)
        let producer = try BatchProducer(source: training, config: config)
        let batch = Batch(capacity: 256, height: config.height, width: config.width)
        var hr = [Float](), labels = [Int32]()
        hr.reserveCapacity(n * batch.sampleSize)
        for s in stride(from: 0, to: n, by: 256) {
            let idx = Array(s..<min(s + 256, n))
            try producer.fill(batch, indices: idx, epoch: 0)
            hr.append(contentsOf: batch.hr.prefix(idx.count * batch.sampleSize)); labels.append(contentsOf: batch.labels.prefix(idx.count))
        }
        func bytes<T>(_ a: [T]) -> [UInt8] { a.withUnsafeBytes { Array($0) } }
        try AtomicFile.write(bytes(hr), to: dir + "/train.f32")
        try AtomicFile.write(bytes(labels), to: dir + "/train.i32")
        let loader = PairImageLoader(pairs: pairs, height: config.height, width: config.width, resizeKernel: config.resizeKernel,
                                     downKernel: config.degradation.downKernel, upKernel: config.degradation.upKernel, threads: config.threads)
        for f in factors {
            let name = f == f.rounded() ? "\(Int(f))" : "\(f)"
            try AtomicFile.write(bytes(try loader.loadAll(factor: f)), to: dir + "/pairs_x\(name).f32")
        }
        try AtomicFile.write(pairs.issame.map { $0 ? 1 : 0 }, to: dir + "/issame.u8")
        return "exported \(n) training images (\(training.classCount) ids) and \(pairs.pairCount) pairs at x\(factors) to \(dir)"
    }
}
