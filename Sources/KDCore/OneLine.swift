// Error messages are one line: a name or value echoed from a file (a tensor name, a pickle GLOBAL,
// an option key) may hold line breaks or other control characters, which are escaped here.

/// `s` with every line break and other control character written as an escape (\n, \r, \t kept
/// as a tab, \u{..} otherwise), so that a message quoting it stays on one line.
public func oneLine(_ s: String) -> String {
    func plain(_ u: Unicode.Scalar) -> Bool {
        u == "\t" || !(u.value < 0x20 || (0x7F...0x9F).contains(u.value) || u == "\u{2028}" || u == "\u{2029}")
    }
    guard !s.unicodeScalars.allSatisfy(plain) else { return s }
    var out = String.UnicodeScalarView()
    for u in s.unicodeScalars {
        if plain(u) { out.append(u); continue }
        let esc = u == "\n" ? "\\n" : u == "\r" ? "\\r" : "\\u{\(String(u.value, radix: 16))}"
        out.append(contentsOf: esc.unicodeScalars)
    }
    return String(out)
}
