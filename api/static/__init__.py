"""Reviewer UI assets; a package only so setuptools ships them (package-data *.html, *.js, *.css)."""
