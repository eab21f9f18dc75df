"""salience.service: the HTTP service and the ``salience`` command line."""
