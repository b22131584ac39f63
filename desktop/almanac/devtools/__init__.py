"""Developer tools: test models and other build-time helpers. Not used by the app at run time."""
