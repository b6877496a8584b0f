"""Gate station: the agent that runs at a compound gate on a Raspberry Pi."""

__version__ = "0.1.0"
