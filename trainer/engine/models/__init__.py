"""The engine's models, one module each with its state as a namedtuple of arrays and compiled
functions `new`, `predict` (or what it gives) and `update`: trainer.engine.kernel wires them, in the
order of its docstring. A new model is a module here and its lines in the kernel (and, for the
mixing stage, one more context in trainer.engine.models.contexts)."""
