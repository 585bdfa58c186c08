"""Tests reach the simulator through the same runner the demo uses."""

from vatsim_collector.simulator.thread import running_simulator

__all__ = ["running_simulator"]
