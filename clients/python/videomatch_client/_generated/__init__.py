"""Stubs generated from protos/videomatch/v1/videomatch.proto by clients/python/generate.sh: do not edit."""
