"""handprop's version (``hp.__version__``), in a module of its own so that the modules that record
it -- model files (:mod:`handprop.saving`) -- need not import the package."""

__version__ = "0.1.0"
