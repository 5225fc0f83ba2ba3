"""One learner, no processes: the simulators (``envs``), the actor-critic networks (``models``), A2C's rollout
and update (``a2c``), the ``Learner`` loop (``learner``) and scoring a checkpoint (``evaluate``)."""
