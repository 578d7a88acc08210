"""The ``embstore`` command line: a thin click shell over the ``embstore`` library."""
