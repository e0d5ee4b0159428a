// Checks shared by the commands that write one output file (embed, export): the path is not a
// folder, its folder exists and is writable; each mistake is one line naming the option.
import Foundation
import Pipeline

/// Refuses `output` (given with `option`, e.g. "--output" or "-o") before any work is done.
func checkOutputPath(_ output: String, option: String, command: String) throws {
    let dir = (output as NSString).deletingLastPathComponent
    var isDir: ObjCBool = false
    if FileManager.default.fileExists(atPath: output, isDirectory: &isDir), isDir.boolValue {
        throw ConfigError("\(command): \(option) \(output) is a folder")
    }
    if !dir.isEmpty {
        guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDir), isDir.boolValue else {
            throw ConfigError("\(command): \(option) \(output): folder \(dir) does not exist")
        }
    }
    guard FileManager.default.isWritableFile(atPath: dir.isEmpty ? "." : dir) else {
        throw ConfigError("\(command): \(option) \(output): folder \(dir.isEmpty ? "." : dir) is not writable")
    }
}
