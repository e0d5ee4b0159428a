// The `kdtrain` executable: the command line itself is in Sources/KDTrainCLI.
import KDTrainCLI

KDTrain.main()
