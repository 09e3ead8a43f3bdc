# -*- coding: utf-8 -*-
"""Cure: the remediation ladder and what it touches processes with (ptrace, signals, runtime CLIs)."""
