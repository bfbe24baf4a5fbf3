"""Sans-IO core of the Live protocol."""
