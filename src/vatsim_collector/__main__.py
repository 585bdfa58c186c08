"""``python -m vatsim_collector`` is the same as the ``vatsim-collector`` command."""

from vatsim_collector.cli import main

main()
