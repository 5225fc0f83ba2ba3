"""Checkers for the exercise notebooks in ``exercises/``: each runs the learner's function against galakit's own
implementation and says, for the first case that fails, what was expected, what came back, and the likely
mistake. Import a checker from here: ``from galakit.exercises import check_n_step_returns``.
"""

from galakit.lazy import lazy_exports

# public name → the module that defines it; exercises/NN_*.ipynb in brackets
_EXPORTS = {
    "galakit.exercises.checking": ("Result",),
    "galakit.exercises.returns": ("check_n_step_returns", "check_gae_returns"),  # [01], [03]
    "galakit.exercises.a2c_loss": ("check_a2c_loss",),  # [02]
    "galakit.exercises.frames": ("check_frame_stack",),  # [04]
    "galakit.exercises.mixing": ("check_mixing_matrix",),  # [05]
    "galakit.exercises.spectrum": ("check_ring_rho", "check_spectral_gap"),  # [06]
    "galakit.exercises.schedules": ("check_one_peer_exponential",),  # [07]
    "galakit.exercises.push_sum": ("check_push_sum_step",),  # [08]
    "galakit.exercises.consensus": ("check_distance_to_average", "check_max_pairwise_distance"),  # [09]
    "galakit.exercises.gala_step": ("check_gala_gossip_step",),  # [10]
    "galakit.exercises.epsilon": ("check_epsilon_bound",),  # [11]
}
__all__, __getattr__, __dir__ = lazy_exports("galakit.exercises", _EXPORTS, globals())
