"""The optional C extension: the BPE merge loop (nlplab/text/_pairmerge.c). Everything else is in pyproject.toml.

`optional=True` lets the install go on without it when there is no C compiler or no Python headers; nlplab then
uses the same loop in Python (nlplab.text.pairmerge.Merger).
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("nlplab.text._pairmerge", ["nlplab/text/_pairmerge.c"], optional=True)])
