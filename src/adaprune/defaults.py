"""Defaults the CLI shows in --help, kept in a module that imports nothing heavy."""

DEFAULT_EVAL_EPOCHS = 30
