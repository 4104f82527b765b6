"""Training: patch sampling, augmentation, losses and the training generator."""
