"""Stages and connectors, one type per module; never import Bytewax here."""
