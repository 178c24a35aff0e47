"""Faces: the command line, the scheduler, the web app and the worker, each a thin layer over the use cases."""
