# -*- coding: utf-8 -*-
"""Record: what a run leaves on the node (state, audit log, metrics), written safely."""
