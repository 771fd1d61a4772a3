"""Sampling, rates, paths, events and transfers.  Headless: never imports Textual."""
