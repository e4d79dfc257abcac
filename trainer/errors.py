"""The one base of pixlm's own errors: every bad input, stream, bundle or recipe is a PixlmError
whose message is one line (the CLI prints it as `pixlm: error: ...`, exit code 2). Each is also
a ValueError, so code that caught those keeps working."""


class PixlmError(ValueError):
    """Something pixlm refuses, with a one-line reason."""
