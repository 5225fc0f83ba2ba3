"""Many learners: processes and the messages between them. How learners are coupled (``coupling``), how gossip
messages travel (``transport``), the live ε-ball boards (``diagnostics``), the supervisor and the worker entry
points (``launch``), and the process plumbing (``lifeline``, ``heartbeat``, ``semaphores``, ``threads``).

This ``__init__`` imports nothing: ``import galakit`` loads ``lifeline`` and ``threads`` before torch."""
