// Closed-set identification (TinyFace) and open-set / surveillance verification (QMUL-SurvFace) as pure
// functions over flat buffers. Legend as in Evaluation.swift, plus:
//   Np  probes, Ng gallery images (identity-matched images followed by distractors), K CMC ranks,
//   Pp  positive (same-identity) pairs, Pn negative pairs.
//
// Scores are cosine similarities of unit embeddings (the flip-test embeddings of VerificationProtocol, or the
// unit rows of the no-flip evaluation): a larger score means "more likely the same identity". Cosine and the
// verification protocol's squared L2 distance order pairs identically (d = 2 - 2 cos).

/// An identification or open-set input that cannot be evaluated. Thrown, never trapped.
public struct ProtocolInputError: Error, Equatable, Sendable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// What `IdentificationProtocol.evaluate` measures.
public struct IdentificationMetrics: Sendable, Equatable, Codable {
    /// Np, Ng, the distractors among the Ng, and the distinct identities of the matched gallery images.
    public var probes: Int
    public var galleryImages: Int
    public var distractors: Int
    public var galleryIdentities: Int
    /// The CMC ranks k (1, 5, 20 for TinyFace).                                                   (K)
    public var ranks: [Int]
    /// CMC at each rank: the fraction of probes whose first correct gallery image has rank <= k.    (K)
    public var cmc: [Double]
    /// The rank of the first correct gallery image of each probe, in 1...Ng (see the protocol).    (Np)
    public var probeRanks: [Int]

    public init(probes: Int, galleryImages: Int, distractors: Int, galleryIdentities: Int, ranks: [Int], cmc: [Double], probeRanks: [Int]) {
        self.probes = probes; self.galleryImages = galleryImages; self.distractors = distractors
        self.galleryIdentities = galleryIdentities; self.ranks = ranks; self.cmc = cmc; self.probeRanks = probeRanks
    }
}

/// Closed-set identification as TinyFace reports it: every probe is compared with every gallery image (the
/// identity-matched gallery plus the distractors), and the cumulative match characteristic (CMC) is read at
/// ranks 1, 5 and 20.
///
/// Definition (the one this module computes and tests):
/// - score s(p, g) = cosine of the unit embeddings of probe p and gallery image g (a dot product, in Double);
/// - the rank of probe p is the position of its first correct gallery image when all Ng gallery images are
///   sorted by score, descending: rank(p) = 1 + #{g wrong for p : s(p, g) >= max over correct g' of s(p, g')},
///   where "wrong" is a matched image of another identity or any distractor (distractors never match). Ties
///   between the best correct image and wrong images count against the probe (the pessimistic order), so no
///   tie-breaking by file order can flatter a model; ties among correct images do not matter;
/// - CMC(k) = #{p : rank(p) <= k} / Np. With Ng < k every probe is within rank k.
///
/// TinyFace's own MATLAB code sorts with MATLAB's stable `sort`, which breaks ties by gallery order; with real
/// embeddings ties have probability zero, so the two agree in practice.
public enum IdentificationProtocol {
    public static let name = "closed-set identification, CMC over match + distractor gallery, cosine, ties against the probe"
    /// TinyFace's ranks.
    public static let standardRanks = [1, 5, 20]
    /// The label of a distractor gallery image: it matches no probe.
    public static let distractorLabel = -1

    /// Scores a block of probes against the whole gallery: `out[i * ng + j] = <probe i, gallery j>`.
    /// The default is a plain loop; callers with BLAS pass a GEMM (the result must be the same dot products).
    public typealias ScoreBlock = @Sendable (_ probes: UnsafePointer<Double>, _ np: Int, _ gallery: UnsafePointer<Double>, _ ng: Int,
                                   _ dimension: Int, _ out: UnsafeMutablePointer<Double>) -> Void

    /// Dot products by a plain loop (the reference the BLAS path is tested against).
    public static let loopScores: ScoreBlock = { p, np, g, ng, e, out in
        for i in 0..<np {
            for j in 0..<ng {
                var s = 0.0
                for k in 0..<e { s += p[i * e + k] * g[j * e + k] }
                out[i * ng + j] = s
            }
        }
    }

    /// The rank of the first correct gallery image of each probe, from a score matrix.
    /// - Parameters:
    ///   - scores: (Np, Ng) row-major cosine scores, larger = more similar.
    ///   - probeLabels: (Np) identity of each probe (>= 0).
    ///   - galleryLabels: (Ng) identity of each gallery image, `distractorLabel` for distractors.
    /// - Throws: `ProtocolInputError` on shape mismatch, non-finite scores, or a probe whose identity has no
    ///   gallery image (closed-set identification is undefined for it).
    public static func firstCorrectRanks(scores: [Double], probeLabels: [Int], galleryLabels: [Int]) throws -> [Int] {
        let np = probeLabels.count, ng = galleryLabels.count
        guard scores.count == np * ng else {
            throw ProtocolInputError("identification: \(scores.count) scores for \(np) probes x \(ng) gallery images")
        }
        try checkLabels(probeLabels: probeLabels, galleryLabels: galleryLabels)
        return try scores.withUnsafeBufferPointer { s in
            try (0..<np).map { try rank(row: UnsafeBufferPointer(rebasing: s[(($0) * ng)..<(($0 + 1) * ng)]), label: probeLabels[$0],
                                        galleryLabels: galleryLabels, probe: $0) }
        }
    }

    /// CMC from per-probe ranks: the fraction of ranks <= k for each k.
    public static func cmc(ranks: [Int], at ks: [Int]) -> [Double] {
        ks.map { k in Double(ranks.reduce(0) { $0 + ($1 <= k ? 1 : 0) }) / Double(max(ranks.count, 1)) }
    }

    /// The whole protocol from unit embeddings.
    /// - Parameters:
    ///   - probes: (Np, E) row-major unit rows; gallery: (Ng, E) unit rows, matched images and distractors.
    ///   - probeLabels: (Np); galleryLabels: (Ng) with `distractorLabel` for distractors.
    ///   - ranks: the CMC ranks, default 1, 5, 20 (each >= 1).
    ///   - score: how blocks of scores are computed (default `loopScores`).
    /// - Complexity: O(Np Ng E) for the scores, O(Np Ng) for the ranks; memory O(64 Ng) for a block of scores.
    public static func evaluate(probes: [Double], probeLabels: [Int], gallery: [Double], galleryLabels: [Int], dimension: Int,
                                ranks: [Int] = standardRanks, score: ScoreBlock = loopScores) throws -> IdentificationMetrics {
        let np = probeLabels.count, ng = galleryLabels.count
        guard dimension > 0 else { throw ProtocolInputError("identification: dimension \(dimension) must be positive") }
        guard !ranks.isEmpty, ranks.allSatisfy({ $0 >= 1 }) else { throw ProtocolInputError("identification: CMC ranks \(ranks) must be >= 1") }
        guard probes.count == np * dimension else {
            throw ProtocolInputError("identification: \(probes.count) probe values are not \(np) rows of dimension \(dimension)")
        }
        guard gallery.count == ng * dimension else {
            throw ProtocolInputError("identification: \(gallery.count) gallery values are not \(ng) rows of dimension \(dimension)")
        }
        if let bad = probes.firstIndex(where: { !$0.isFinite }) {
            throw ProtocolInputError("identification: non-finite probe embedding value at flat index \(bad)")
        }
        if let bad = gallery.firstIndex(where: { !$0.isFinite }) {
            throw ProtocolInputError("identification: non-finite gallery embedding value at flat index \(bad)")
        }
        try checkLabels(probeLabels: probeLabels, galleryLabels: galleryLabels)
        let block = 64
        var buf = [Double](repeating: 0, count: min(block, np) * ng)
        var out = [Int](repeating: 0, count: np)
        try probes.withUnsafeBufferPointer { p in
            try gallery.withUnsafeBufferPointer { g in
                try buf.withUnsafeMutableBufferPointer { b in
                    var start = 0
                    while start < np {
                        let n = min(block, np - start)
                        score(p.baseAddress! + start * dimension, n, g.baseAddress!, ng, dimension, b.baseAddress!)
                        for i in 0..<n {
                            out[start + i] = try rank(row: UnsafeBufferPointer(rebasing: b[(i * ng)..<((i + 1) * ng)]),
                                                      label: probeLabels[start + i], galleryLabels: galleryLabels, probe: start + i)
                        }
                        start += n
                    }
                }
            }
        }
        let distractors = galleryLabels.reduce(0) { $0 + ($1 == distractorLabel ? 1 : 0) }
        return IdentificationMetrics(probes: np, galleryImages: ng, distractors: distractors,
                                     galleryIdentities: Set(galleryLabels.filter { $0 != distractorLabel }).count,
                                     ranks: ranks, cmc: cmc(ranks: out, at: ranks), probeRanks: out)
    }

    static func checkLabels(probeLabels: [Int], galleryLabels: [Int]) throws {
        guard !probeLabels.isEmpty else { throw ProtocolInputError("identification: no probes") }
        if let bad = probeLabels.firstIndex(where: { $0 < 0 }) {
            throw ProtocolInputError("identification: probe \(bad) has label \(probeLabels[bad]); probe labels must be >= 0")
        }
        if let bad = galleryLabels.firstIndex(where: { $0 < 0 && $0 != distractorLabel }) {
            throw ProtocolInputError("identification: gallery image \(bad) has label \(galleryLabels[bad]); use >= 0, or \(distractorLabel) for a distractor")
        }
        let known = Set(galleryLabels)
        if let bad = probeLabels.firstIndex(where: { !known.contains($0) }) {
            throw ProtocolInputError("identification: probe \(bad) (identity \(probeLabels[bad])) has no image of its identity in the gallery")
        }
    }

    /// rank = 1 + #{wrong g : s(g) >= best correct score}.
    static func rank(row: UnsafeBufferPointer<Double>, label: Int, galleryLabels: [Int], probe: Int) throws -> Int {
        var best = -Double.infinity, found = false
        for j in 0..<row.count where galleryLabels[j] == label {
            guard row[j].isFinite else { throw ProtocolInputError("identification: non-finite score of probe \(probe) and gallery image \(j)") }
            if !found || row[j] > best { best = row[j]; found = true }
        }
        guard found else { throw ProtocolInputError("identification: probe \(probe) (identity \(label)) has no image of its identity in the gallery") }
        var ahead = 0
        for j in 0..<row.count where galleryLabels[j] != label {
            guard row[j].isFinite else { throw ProtocolInputError("identification: non-finite score of probe \(probe) and gallery image \(j)") }
            if row[j] >= best { ahead += 1 }
        }
        return 1 + ahead
    }
}

