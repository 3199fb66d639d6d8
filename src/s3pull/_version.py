"""The package version, in a module of its own so that the CLI's parser can
name it without importing the root package and, through it, every client."""

__version__ = "0.1.0"
