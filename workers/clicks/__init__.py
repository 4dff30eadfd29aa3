"""Behaviour prediction from click events: per-session state, next items, purchase intent."""
