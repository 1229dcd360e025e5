# An algorithm image with pretrained weights inside (`make build ALGO=<algo> PRETRAINED=DIR`):
# the state dicts of DIR (.pth, .pt, .safetensors; torchvision's format) converted to safetensors
# at /opt/smalgos/pretrained/<algo>/<name>.safetensors, where use_pretrained_model=1 finds them
# (smalgos.vision.pretrained). The .pth files are read with torch.load(weights_only=True).
ARG IMAGE
FROM ${IMAGE}
ARG ALGO
COPY pretrained/ /tmp/pretrained/
RUN python -m smalgos.vision.pretrained /tmp/pretrained "/opt/smalgos/pretrained/${ALGO}" \
 && chmod -R a+rX /opt/smalgos/pretrained \
 && rm -rf /tmp/pretrained
