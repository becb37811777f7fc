"""Example features shipped with offramp (package data: `importlib.resources.files("offramp.features")`)."""
