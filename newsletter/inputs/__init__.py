"""Inputs: config, content and the rules every value must pass at the door, read once with file:line errors."""
