# -*- coding: utf-8 -*-
"""Controller: code that runs on the Ansible controller only (the fleet report)."""
