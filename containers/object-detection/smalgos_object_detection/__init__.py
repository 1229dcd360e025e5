"""Object Detection (SageMaker's `object-detection`): SSD in plain torch."""
