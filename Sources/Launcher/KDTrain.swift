import ArgumentParser
import Model
import Dist
import FaceData

@main
struct KDTrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kdtrain",
        abstract: "Knowledge-distillation training of low-quality face recognition, data-parallel over MPI.",
        version: kdtrainVersion)
    func run() throws { print("kdtrain \(kdtrainVersion)") }
}
