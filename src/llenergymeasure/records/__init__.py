"""The typed records every layer passes on: results, energy readings, the environment, and
their atomic files. This package imports nothing of the project above config."""
