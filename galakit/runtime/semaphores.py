"""Named semaphores that outlive nobody: unlink them once every learner has opened them.

Under ``spawn``/``forkserver`` a multiprocessing lock, event or queue is a *named* POSIX semaphore
(``/dev/shm/sem.mp-…``): a child opens it by name while unpickling its arguments. Python unlinks the names when
the parent finishes, or its resource tracker does when the parent dies; but killing the whole process group
(what restarting a Jupyter kernel does) kills the tracker too, and the names stay in ``/dev/shm`` for good. A
name is only needed until every child has opened it, so the launcher unlinks them right then; the semaphores
themselves live on, unnamed, for as long as a process holds them.
"""

from __future__ import annotations

from typing import Any


def semaphore_names(*objects: Any) -> set[str]:
    """The names of the multiprocessing semaphores inside ``objects`` (queues, events, locks, and the objects,
    lists and dicts holding them), found by walking their attributes."""
    from multiprocessing.synchronize import SemLock

    names, seen, todo = set(), set(), list(objects)
    while todo:
        obj = todo.pop()
        if id(obj) in seen or obj is None or isinstance(obj, (str, bytes, int, float)):
            continue
        seen.add(id(obj))
        if isinstance(obj, SemLock):
            name = getattr(obj._semlock, "name", None)
            if name:
                names.add(name)
        if isinstance(obj, (list, tuple, set)):
            todo += obj
        elif isinstance(obj, dict):
            todo += obj.values()
        elif hasattr(obj, "__dict__") and type(obj).__module__.split(".")[0] in ("multiprocessing", "galakit"):
            todo += vars(obj).values()
    return names


def unlink_semaphores(names: set[str]) -> int:
    """Unlink ``names`` now, through the finalizers multiprocessing registered for them (so they do not run, and
    fail, again at exit). Returns how many were unlinked."""
    from multiprocessing import util
    from multiprocessing.synchronize import SemLock

    finalizers = [f for f in list(util._finalizer_registry.values())  # no public way to run one early
                  if getattr(f, "_callback", None) is SemLock._cleanup and f._args and f._args[0] in names]
    for finalizer in finalizers:
        finalizer()
    return len(finalizers)
