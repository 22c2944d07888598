"""Data: class names, folder datasets, the one preprocessing function, augmentation, face sources."""
