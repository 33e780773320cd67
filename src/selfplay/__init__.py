"""selfplay: can a model train itself past the data wall? Expert iteration with verified chains."""

__version__ = "0.1.0"
