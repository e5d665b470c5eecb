"""Model definitions and checkpoint loading (torch imported lazily)."""
