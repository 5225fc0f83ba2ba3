"""Presentation only: what a student sees. Every number they show comes from the other subpackages; views never
feed anything back, and ``import galakit`` never imports this one (matplotlib and ipywidgets are slow to load).

* ``explore(...)``: the interactive gossip-graph explorer (``explorer``): a topology, gossip on it step by step,
  its consensus error against the predicted rate, its mixing matrices;
* ``Dashboard``: the live training view, an observer (``dashboard``): pass it to ``train``/``start``, give it a
  ``Run`` that is going, or a finished run's directory;
* ``replay(checkpoint)``: a checkpoint playing, inline, with its raw score (``playback``);
* figures for scripts, docs and slides (``plots``): a topology at step k, a mixing matrix, consensus error, a run;
  and of a ``galakit reproduce`` grid (``results``): scores against frames and wall-clock, frame rates, ε, beside a
  published run read from its Stable-Baselines3 Monitor files.
"""

from galakit.lazy import lazy_exports

_EXPORTS = {
    "galakit.views.explorer": ("GossipExplorer", "explore"),
    "galakit.views.dashboard": ("Dashboard",),
    "galakit.views.playback": ("Replay", "replay"),
    "galakit.views.plots": ("draw_mixing_matrix", "draw_topology", "plot_consensus", "plot_training"),
    "galakit.views.results": ("load_grid", "monitor_curve", "plot_grid"),
}
__all__, __getattr__, __dir__ = lazy_exports("galakit.views", _EXPORTS, globals())
