"""Shared fixtures. This directory is on sys.path (pytest puts a root conftest's directory there), so test modules
in the subfolders and spawned learners import the helper environments ``faulty_env`` and ``scripted_env``."""
