"""Developer scripts (``make invoke``); a package so tests can import ``scripts.invoke``."""
