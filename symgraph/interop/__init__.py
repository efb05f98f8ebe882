"""Bridges to other libraries (SymPy; graph export)."""
