"""Build and report tooling kept out of the app's core: the GGUF converter and quantizer, and the
terminal progress and plots of `almanac eval`."""
