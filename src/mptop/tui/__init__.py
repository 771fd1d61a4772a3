"""The Textual views: they only draw what :mod:`mptop.core` produces."""
