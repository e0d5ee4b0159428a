// Dist: the only module that talks to MPI. (Filled in by the Dist issue.)
import CMPI
