"""nlplab: the NLP study notes as working, tested software."""

__version__ = "0.1.0"
