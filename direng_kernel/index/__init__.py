"""Code index: parsing, resolution, chunking and storage of a source tree."""
