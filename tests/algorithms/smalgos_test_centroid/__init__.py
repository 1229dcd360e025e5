"""A small, test-only algorithm (nearest class centroid) that drives the whole spine: declaration,
validation, channels in File and Pipe mode, metrics, model files and serving. Never shipped."""
