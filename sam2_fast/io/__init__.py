"""Video/frame input and output helpers."""


def av_errors() -> tuple:
    """The exceptions PyAV raises for unreadable, undecodable or unwritable media:
    ``av.error.FFmpegError`` (its subclasses also derive from OSError/ValueError...), plus
    OSError and ValueError. Use as ``except av_errors() as e``."""
    import av

    return (av.error.FFmpegError, OSError, ValueError)
