"""Error management: taxonomy, scrubbing, the ErrorManager, retry, circuit breakers, recovery.

Import from the submodules (``vatsim_collector.errors.taxonomy``, ``.scrub``, ``.manager``,
``.retry``, ``.breaker``, ``.recovery``); this package deliberately re-exports nothing.
"""
