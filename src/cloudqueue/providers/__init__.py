"""Built-in providers: ``memory://`` and ``sqlite://``."""
