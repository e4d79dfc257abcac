"""Image files in and out at full fidelity (trainer.images.picture): the one place pixlm reads and
writes images, shared by the codec, training and the bench."""
