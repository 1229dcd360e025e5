"""Semantic Segmentation: FCN, PSP and DeepLabV3 on a dilated ResNet, in torch."""
