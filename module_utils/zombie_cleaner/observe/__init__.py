# -*- coding: utf-8 -*-
"""Observe: read /proc and the runtimes' files, attribute zombies, decide what is confirmed. Never acts."""
