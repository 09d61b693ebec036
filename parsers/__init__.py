"""Parse stages (json, …), one type per module; never import Bytewax here."""
