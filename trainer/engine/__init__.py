"""The online engine: classical predictors blended by their recent errors, adaptive residual
models and a range coder, all compiled integer code (numba) that adapts to each image as it codes."""
