"""The built web UI and the routes that serve it."""
