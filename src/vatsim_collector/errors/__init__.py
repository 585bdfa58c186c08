"""Error management: the exception tree and its classifier, scrubbing, the ErrorManager, retry,
circuit breakers, recovery.

Import from the submodules (``vatsim_collector.errors.exceptions``, ``.taxonomy``, ``.scrub``,
``.manager``, ``.retry``, ``.breaker``, ``.recovery``); this package deliberately re-exports
nothing, so that importing the leaf ``exceptions`` (as ``config`` does) loads nothing else.
"""
