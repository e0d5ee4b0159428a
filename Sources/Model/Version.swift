/// The software version written into run directories and checkpoints.
public let kdtrainVersion = "0.1.0"
