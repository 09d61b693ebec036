"""Contracts shared by every layer: records, config models, the stage/connector protocols and the registry."""
