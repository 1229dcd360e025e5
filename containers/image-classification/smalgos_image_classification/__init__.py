"""Image Classification (`image-classification`): see declaration.py, model.py and train.py."""
