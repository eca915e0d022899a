"""The specification as one self-contained HTML page: every feature, rule and scenario of
features/, each @contrast beside the guarantee it contrasts, and one column per RabbitMQ
version that ran it (``make docs``; ``python -m docs --help``)."""
