// FaceData: data sources and degradations. (Filled in by the Data issue.)
import CImage
