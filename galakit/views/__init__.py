"""Presentation only: figures of topologies, gossip traces and training runs (``plots``). Every number they show
comes from the other subpackages; ``import galakit`` never imports this one (matplotlib is slow to load)."""
