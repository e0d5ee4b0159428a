// Evaluation: verification metrics and reports. (Filled in by the evaluation work.)
