// Data source specs (synthetic:, folder:, rec:, bin:, pairs:): parsing and canonical round trips,
// one-line errors for bad specs, raw exports.
import FaceData
import XCTest

final class DataSourceTests: XCTestCase {
    func testParsesEveryKindAndRoundTrips() throws {
        let specs = ["synthetic", "synthetic:ids=200,images=10,size=112,seed=4,pairs=600,verify-ids=100",
                     "folder:/data/casia", "folder:/d;strict;pairs=400;seed=2", "folder:/d;size=112x96", "folder:/d;strict;bycontent;size=56x56;pairs=20", "rec:/d/train.rec", "bin:/d/agedb_30.bin",
                     "pairs:/d/pairs.txt@/d/lfw@home"]
        for s in specs {
            let d = try DataSource(parsing: s)
            XCTAssertEqual(try DataSource(parsing: d.description), d, s)
        }
        XCTAssertEqual(try DataSource(parsing: "pairs:/d/p.txt@/root@x"), .pairs(list: "/d/p.txt@/root", root: "x"))
        guard case .synthetic(let c) = try DataSource(parsing: "synthetic:size=112") else { return XCTFail() }
        XCTAssertEqual(c.width, 112); XCTAssertEqual(c.identities, 1000)
    }

    func testBadSpecsGiveOneLineErrors() {
        assertThrowsDataError(.spec, containing: "unknown data source kind 'jpeg'", try DataSource(parsing: "jpeg:/x"))
        assertThrowsDataError(.spec, containing: "unknown synthetic key 'colour'", try DataSource(parsing: "synthetic:colour=3"))
        assertThrowsDataError(.spec, containing: "synthetic.pairs", try DataSource(parsing: "synthetic:pairs=7"))
        assertThrowsDataError(.spec, containing: "synthetic.identities", try DataSource(parsing: "synthetic:ids=1099511627776,images=1099511627776"))
        assertThrowsDataError(.spec, containing: "LIST@IMAGE_ROOT", try DataSource(parsing: "pairs:/x/pairs.txt"))
        assertThrowsDataError(.spec, containing: "unknown folder option", try DataSource(parsing: "folder:/x;fast"))
        assertThrowsDataError(.spec, containing: "unknown folder option 'size=12'", try DataSource(parsing: "folder:/x;size=12"))
        assertThrowsDataError(.spec, containing: "verification-only", try DataSource(parsing: "bin:/x.bin").trainingSet())
        assertThrowsDataError(.io, containing: "/nonexistent.bin", try DataSource(parsing: "bin:/nonexistent.bin").pairSet())
    }
}

final class RawExportTests: XCTestCase {
    func testExportWritesRawArraysOfTheRightSize() throws {
        let dir = try tempDir(self)
        let c = SyntheticConfig(identities: 4, imagesPerIdentity: 3, width: 16, height: 16, pairs: 20, verificationIdentities: 20)
        try RawExport.write(training: try SyntheticTrainingSet(c), pairs: try SyntheticPairSet(c),
                            config: BatchConfig(height: 16, width: 16, augmentation: .none), factors: [1, 4], limit: 10, to: dir)
        func size(_ n: String) throws -> Int { (try FileManager.default.attributesOfItem(atPath: dir + "/" + n)[.size] as? Int) ?? -1 }
        XCTAssertEqual(try size("train.f32"), 10 * 3 * 256 * 4)
        XCTAssertEqual(try size("train.i32"), 40)
        XCTAssertEqual(try size("pairs_x4.f32"), 40 * 3 * 256 * 4)
        XCTAssertEqual(try size("issame.u8"), 20)
        let labels = try Data(contentsOf: URL(fileURLWithPath: dir + "/train.i32")).withUnsafeBytes { Array($0.bindMemory(to: Int32.self)) }
        XCTAssertEqual(labels, [0, 0, 0, 1, 1, 1, 2, 2, 2, 3])
    }
}
