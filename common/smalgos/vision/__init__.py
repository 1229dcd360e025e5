"""The vision family's shared parts (Image Classification now; Object Detection and Semantic
Segmentation later): ResNets in plain torch with torchvision's parameter names (resnet.py), MXNet
RecordIO image records and `.lst` files (recordio_images.py), augmentation in torch
(transforms.py), the image content types (media.py) and the step learning-rate schedule
(schedule.py). torchvision itself is not used: PyPI's wheels are CUDA builds that do not import
beside the CPU torch of the CPU images (/work/shared/spec/next-algorithms.md §0.1)."""
