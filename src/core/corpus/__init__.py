"""The default corpus: pydoc pages of the standard library, chunked, embedded and written as a snapshot."""
