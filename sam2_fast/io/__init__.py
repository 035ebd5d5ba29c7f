"""Video/frame input and output helpers."""
