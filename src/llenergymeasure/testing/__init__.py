"""Test doubles that users' own tests can share: a simulated NVML that behaves like a
measured H200, a simulated CUDA device with timing events, a fake engine, a fake energy
sampler and a fake powercap tree.

They are not part of a measurement: the engine and sampler registries list ``fake`` only
once this package is imported or ``LLEM_TESTING=1`` is set.
"""
