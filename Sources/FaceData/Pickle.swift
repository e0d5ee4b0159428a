// insightface verification sets (.bin): a pickle of (list of encoded images, list of bools).
//
// The reader is a small, restricted pickle machine. It accepts only the opcodes such files use
// (protocols 2-5 and the Python 2 form: PROTO, FRAME, EMPTY_LIST, MARK, APPEND(S), memo PUT/GET/MEMOIZE,
// BINSTRING, SHORT_BINSTRING, BINBYTES, SHORT_BINBYTES, BINBYTES8, BINUNICODE(8), SHORT_BINUNICODE,
// NEWTRUE, NEWFALSE, NONE, BININT(1,2), TUPLE(1,2,3), EMPTY_TUPLE, BYTEARRAY8, STOP) plus exactly
// these calls, which it evaluates itself:
// - `_codecs.encode(str, 'latin1')` (and `__builtin__.bytes()`), what Python 3 writes for bytes at
//   protocol 2;
// - a one-byte-per-element numpy array, as insightface's build_eval_pack.py stores each image (the
//   (N, 1) uint8 array cv2.imencode returns): `numpy.dtype('u1', False, True)` with its BUILD state,
//   and either `numpy[._]core.multiarray._reconstruct(numpy.ndarray, (0,), b'b')` followed by BUILD
//   (1, shape, dtype, is_fortran, raw bytes) (protocols 2-4) or `numpy[._]core.numeric._frombuffer(
//   bytes, dtype, shape, order)` (protocol 5). The array's bytes become the encoded image; any other
//   dtype, a shape that does not match the byte count, or other arguments are rejected.
// It never imports or constructs arbitrary objects: any other GLOBAL/STACK_GLOBAL/REDUCE/BUILD/INST/OBJ
// opcode is rejected with an error naming the opcode and offset. Every length is checked against the
// bytes left in the file.
import Foundation

public enum PickleBin {
    indirect enum Value {
        case bytes([UInt8]), str(String), bool(Bool), int(Int), tuple([Value]), list(ListBox), global(String), mark, none
        /// numpy.dtype('u1'), the only dtype accepted.
        case dtypeU1
        /// A numpy array made by `_reconstruct`, filled by its BUILD (a box: the memo may share it).
        case array(ArrayBox)
    }
    final class ListBox { var items: [Value] = [] }
    final class ArrayBox { var data: [UInt8]? }

    /// Parses the bytes of a .bin file. `name` names the file in errors.
    /// - Returns: the 2P encoded images and the P issame flags.
    public static func read(_ b: [UInt8], name: String) throws -> (images: [[UInt8]], issame: [Bool]) {
        var stack = [Value](), memo = [Int: Value](), pos = 0
        // A list may be appended to itself (through the memo): a reference cycle. Emptying every list
        // on the way out breaks such cycles, so a hostile file cannot leak memory on each read.
        var lists = [ListBox]()
        defer { for l in lists { l.items.removeAll() } }
        func fail(_ m: String) -> DataError { DataError(.format, name, m) }
        func need(_ n: Int, _ what: String) throws {
            guard n >= 0, pos + n <= b.count else { throw fail("\(what) needs \(n) bytes at offset \(pos) but the file ends at \(b.count)") }
        }
        func uint(_ n: Int, _ what: String) throws -> Int {
            try need(n, what)
            var v: UInt64 = 0
            for i in 0..<n { v |= UInt64(b[pos + i]) << (8 * UInt64(i)) }
            pos += n
            guard v < 1 << 40 else { throw fail("\(what) length \(v) is implausible") }
            return Int(v)
        }
        func take(_ n: Int, _ what: String) throws -> [UInt8] { try need(n, what); defer { pos += n }; return Array(b[pos..<(pos + n)]) }
        func pop(_ what: String) throws -> Value {
            guard let v = stack.popLast() else { throw fail("\(what) at offset \(pos) on an empty stack") }
            if case .mark = v { throw fail("\(what) at offset \(pos) found a MARK") }
            return v
        }
        func popMark(_ what: String) throws -> [Value] {
            guard let m = stack.lastIndex(where: { if case .mark = $0 { return true }; return false }) else { throw fail("\(what) at offset \(pos) without MARK") }
            let items = Array(stack[(m + 1)...]); stack.removeSubrange(m...)
            return items
        }
        func line(_ what: String) throws -> String {
            guard let e = b[pos...].firstIndex(of: 10), e - pos < 256 else { throw fail("\(what) at offset \(pos): unterminated line") }
            defer { pos = e + 1 }
            return String(decoding: b[pos..<e], as: UTF8.self)
        }
        func str(_ n: Int, _ what: String) throws -> String {
            let bytes = try take(n, what)
            guard let s = String(validating: bytes, as: UTF8.self) else { throw fail("\(what) at offset \(pos - n) is not valid UTF-8") }
            return s
        }
        /// The shape must be a tuple of non-negative ints whose product is the byte count (one byte per element).
        func checkShape(_ shape: [Value], _ count: Int, _ at: Int) throws {
            var n = 1
            for d in shape {
                guard case .int(let k) = d, k >= 0 else { throw fail("numpy array at offset \(at): shape \(shape.count)-tuple holds something other than a size") }
                let (p, o) = n.multipliedReportingOverflow(by: k)
                guard !o else { throw fail("numpy array at offset \(at): shape overflows") }
                n = p
            }
            guard n == count else { throw fail("numpy array at offset \(at): shape has \(n) elements but \(count) bytes of data (only uint8 arrays are read)") }
        }
        /// REDUCE of an allowed numpy global, or nil when `g` is not one.
        func numpyCall(_ g: String, _ a: [Value]) throws -> Value? {
            let at = pos - 1
            switch g {
            case "numpy.dtype":
                guard a.count == 3, case .str(let d) = a[0], d == "u1", case .bool(false) = a[1], case .bool(true) = a[2] else {
                    throw fail("REDUCE numpy.dtype at offset \(at): only dtype('u1') (uint8) is accepted")
                }
                return .dtypeU1
            case "numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct":
                guard a.count == 3, case .global("numpy.ndarray") = a[0], case .tuple(let s0) = a[1], s0.count == 1, case .int(0) = s0[0],
                      case .bytes(let code) = a[2], code == [UInt8(ascii: "b")] else {
                    throw fail("REDUCE \(g) at offset \(at) with arguments other than (numpy.ndarray, (0,), b'b')")
                }
                return .array(ArrayBox())
            case "numpy.core.numeric._frombuffer", "numpy._core.numeric._frombuffer":
                guard a.count == 4, case .bytes(let buf) = a[0], case .dtypeU1 = a[1], case .tuple(let shape) = a[2],
                      case .str(let order) = a[3], order == "C" || order == "F" else {
                    throw fail("REDUCE \(g) at offset \(at) with arguments other than (bytes, dtype('u1'), shape, 'C' or 'F')")
                }
                try checkShape(shape, buf.count, at)
                return .bytes(buf)
            case "numpy.ndarray":
                throw fail("REDUCE numpy.ndarray at offset \(at): arrays are only read through _reconstruct or _frombuffer")
            default:
                return nil
            }
        }
        loop: while true {
            guard pos < b.count else { throw fail("ends at offset \(pos) without a STOP opcode (truncated?)") }
            let op = b[pos], at = pos
            pos += 1
            switch op {
            case 0x80: let v = try uint(1, "PROTO"); guard (2...5).contains(v) else { throw fail("pickle protocol \(v) is not supported (2-5)") }
            case 0x95: _ = try uint(8, "FRAME")      // frame boundaries carry no data
            case 0x5D: let l = ListBox(); lists.append(l); stack.append(.list(l))   // ]
            case 0x28: stack.append(.mark)                          // (
            case 0x61:                                               // a APPEND
                let v = try pop("APPEND")
                guard case .list(let l)? = stack.last else { throw fail("APPEND at offset \(at) not on a list") }
                l.items.append(v)
            case 0x65:                                               // e APPENDS
                let items = try popMark("APPENDS")
                guard case .list(let l)? = stack.last else { throw fail("APPENDS at offset \(at) not on a list") }
                l.items.append(contentsOf: items)
            case 0x71: guard let v = stack.last else { throw fail("BINPUT at offset \(at) on an empty stack") }; memo[try uint(1, "BINPUT")] = v
            case 0x72: guard let v = stack.last else { throw fail("LONG_BINPUT at offset \(at) on an empty stack") }; memo[try uint(4, "LONG_BINPUT")] = v
            case 0x94: guard let v = stack.last else { throw fail("MEMOIZE at offset \(at) on an empty stack") }; memo[memo.count] = v
            case 0x68, 0x6A:                                         // h BINGET, j LONG_BINGET
                let k = try uint(op == 0x68 ? 1 : 4, "BINGET")
                guard let v = memo[k] else { throw fail("memo key \(k) at offset \(at) was never stored") }
                stack.append(v)
            case 0x54:                                               // T BINSTRING (signed 4-byte length)
                let n = try uint(4, "BINSTRING"); guard n < 1 << 31 else { throw fail("BINSTRING at offset \(at) has a negative length") }
                stack.append(.bytes(try take(n, "BINSTRING")))
            case 0x55: stack.append(.bytes(try take(try uint(1, "SHORT_BINSTRING"), "SHORT_BINSTRING")))
            case 0x42: stack.append(.bytes(try take(try uint(4, "BINBYTES"), "BINBYTES")))
            case 0x43: stack.append(.bytes(try take(try uint(1, "SHORT_BINBYTES"), "SHORT_BINBYTES")))
            case 0x8E: stack.append(.bytes(try take(try uint(8, "BINBYTES8"), "BINBYTES8")))
            case 0x58: stack.append(.str(try str(try uint(4, "BINUNICODE"), "BINUNICODE")))
            case 0x8C: stack.append(.str(try str(try uint(1, "SHORT_BINUNICODE"), "SHORT_BINUNICODE")))
            case 0x8D: stack.append(.str(try str(try uint(8, "BINUNICODE8"), "BINUNICODE8")))
            case 0x96: stack.append(.bytes(try take(try uint(8, "BYTEARRAY8"), "BYTEARRAY8")))
            case 0x4E: stack.append(.none)                          // N NONE
            case 0x88: stack.append(.bool(true))
            case 0x89: stack.append(.bool(false))
            case 0x4B: stack.append(.int(try uint(1, "BININT1")))
            case 0x4D: stack.append(.int(try uint(2, "BININT2")))
            case 0x4A: stack.append(.int(Int(Int32(truncatingIfNeeded: try uint(4, "BININT")))))
            case 0x29: stack.append(.tuple([]))                      // )
            case 0x85: stack.append(.tuple([try pop("TUPLE1")]))
            case 0x86: let y = try pop("TUPLE2"), x = try pop("TUPLE2"); stack.append(.tuple([x, y]))
            case 0x87: let z = try pop("TUPLE3"), y = try pop("TUPLE3"), x = try pop("TUPLE3"); stack.append(.tuple([x, y, z]))
            case 0x74: stack.append(.tuple(try popMark("TUPLE")))    // t
            case 0x63:                                               // c GLOBAL
                let g = try line("GLOBAL") + "." + (try line("GLOBAL"))
                guard allowedGlobals.contains(g) else { throw fail("refuses GLOBAL \(g) at offset \(at): a .bin file only needs _codecs.encode and numpy's uint8 arrays") }
                stack.append(.global(g))
            case 0x93:                                               // STACK_GLOBAL
                guard case .str(let n) = try pop("STACK_GLOBAL"), case .str(let m) = try pop("STACK_GLOBAL") else { throw fail("STACK_GLOBAL at offset \(at) without two strings") }
                guard allowedGlobals.contains(m + "." + n) else { throw fail("refuses STACK_GLOBAL \(m).\(n) at offset \(at): a .bin file only needs _codecs.encode and numpy's uint8 arrays") }
                stack.append(.global(m + "." + n))
            case 0x52:                                               // R REDUCE: only the bytes encodings
                let args = try pop("REDUCE"), f = try pop("REDUCE")
                guard case .global(let g) = f, case .tuple(let a) = args else { throw fail("REDUCE at offset \(at) on something other than an allowed global") }
                if let v = try numpyCall(g, a) { stack.append(v) }
                else if g == "_codecs.encode" {
                    guard a.count == 2, case .str(let s) = a[0], case .str(let enc) = a[1], enc == "latin1" || enc == "latin-1" else {
                        throw fail("REDUCE _codecs.encode at offset \(at) with arguments other than (str, 'latin1')")
                    }
                    var out = [UInt8](); out.reserveCapacity(s.unicodeScalars.count)
                    for u in s.unicodeScalars {
                        guard u.value < 256 else { throw fail("_codecs.encode at offset \(at): character U+\(String(u.value, radix: 16)) is not latin1") }
                        out.append(UInt8(u.value))
                    }
                    stack.append(.bytes(out))
                } else {
                    guard g.hasSuffix(".bytes"), a.isEmpty else { throw fail("REDUCE \(g) at offset \(at) with arguments") }
                    stack.append(.bytes([]))
                }
            case 0x62:                                               // b BUILD: only numpy dtype and array states
                let state = try pop("BUILD"), obj = try pop("BUILD")
                guard case .tuple(let t) = state else { throw fail("BUILD at offset \(at) with a state that is not a tuple") }
                switch obj {
                case .dtypeU1:
                    guard t.count == 8, case .int(3) = t[0], case .str(let order) = t[1], order == "|" else {
                        throw fail("BUILD at offset \(at): numpy dtype state \(t.count) items is not the uint8 state (3, '|', ...)")
                    }
                    stack.append(.dtypeU1)
                case .array(let box):
                    guard box.data == nil, t.count == 5, case .int(1) = t[0], case .tuple(let shape) = t[1], case .dtypeU1 = t[2],
                          case .bool = t[3], case .bytes(let raw) = t[4] else {
                        throw fail("BUILD at offset \(at): numpy array state is not (1, shape, dtype('u1'), is_fortran, bytes)")
                    }
                    try checkShape(shape, raw.count, at)
                    box.data = raw
                    stack.append(.array(box))
                default:
                    throw fail("BUILD at offset \(at) on something other than a numpy uint8 array or dtype")
                }
            case 0x2E: break loop                                    // . STOP
            default:
                let ch = (0x20..<0x7F).contains(op) ? " ('\(Character(Unicode.Scalar(op)))')" : ""
                throw fail("unsupported pickle opcode 0x\(String(op, radix: 16))\(ch) at offset \(at): this reader accepts only the opcodes of insightface .bin files")
            }
        }
        guard stack.count == 1, case .tuple(let top) = stack[0], top.count == 2 else {
            throw fail("top-level object is not a 2-tuple (bins, issame_list)")
        }
        guard case .list(let binsL) = top[0] else { throw fail("first element is not a list of encoded images") }
        guard case .list(let sameL) = top[1] else { throw fail("second element is not a list of bools") }
        var images = [[UInt8]](); images.reserveCapacity(binsL.items.count)
        for (i, v) in binsL.items.enumerated() {
            switch v {
            case .bytes(let x): images.append(x)
            case .array(let box):
                guard let x = box.data else { throw fail("bins[\(i)] is a numpy array whose data was never set (no BUILD)") }
                images.append(x)
            default: throw fail("bins[\(i)] is not a byte string or a uint8 numpy array")
            }
        }
        var issame = [Bool]()
        for (i, v) in sameL.items.enumerated() {
            switch v {
            case .bool(let x): issame.append(x)
            case .int(let x) where x == 0 || x == 1: issame.append(x == 1)
            default: throw fail("issame_list[\(i)] is not a bool")
            }
        }
        guard !issame.isEmpty else { throw fail("no pairs") }
        guard images.count == 2 * issame.count else {
            throw fail("\(images.count) images for \(issame.count) pairs (expected \(2 * issame.count))")
        }
        return (images, issame)
    }

    static let allowedGlobals: Set<String> = [
        "_codecs.encode", "__builtin__.bytes", "builtins.bytes",
        "numpy.dtype", "numpy.ndarray",
        "numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct",
        "numpy.core.numeric._frombuffer", "numpy._core.numeric._frombuffer",
    ]

    /// Serializes (images, issame) as a protocol-4 pickle (unframed) that Python's pickle.load reads as
    /// (list of bytes, list of bool), the layout insightface's verification code expects.
    public static func write(images: [[UInt8]], issame: [Bool]) -> [UInt8] {
        precondition(images.count == 2 * issame.count)
        var o: [UInt8] = [0x80, 4]
        func u32(_ v: Int) { for i in 0..<4 { o.append(UInt8((v >> (8 * i)) & 0xFF)) } }
        o.append(0x5D)
        for chunk in stride(from: 0, to: images.count, by: 1000) {
            o.append(0x28)
            for im in images[chunk..<min(chunk + 1000, images.count)] {
                if im.count < 256 { o.append(0x43); o.append(UInt8(im.count)) } else { o.append(0x42); u32(im.count) }
                o.append(contentsOf: im)
            }
            o.append(0x65)
        }
        o.append(0x5D)
        for chunk in stride(from: 0, to: issame.count, by: 1000) {
            o.append(0x28)
            for s in issame[chunk..<min(chunk + 1000, issame.count)] { o.append(s ? 0x88 : 0x89) }
            o.append(0x65)
        }
        o.append(0x86); o.append(0x2E)
        return o
    }
}
