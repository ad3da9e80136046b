"""Command mux that hands control to a human operator when the monitor flags an error, and gives it back."""
