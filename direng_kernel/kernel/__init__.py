"""The DirEng Jupyter kernel: prose cells talk to DirEng, `%`/`!`/`%%python` cells run Python."""
