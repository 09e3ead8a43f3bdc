"""The role's defaults and its argument specs must agree (prometheus-community's habit)."""

from pathlib import Path

import yaml

ROLE = Path(__file__).resolve().parents[2] / "roles" / "zombie_cleaner"


def test_every_default_is_specified_with_the_same_value():
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    specs = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())["argument_specs"]["main"]["options"]
    assert sorted(defaults) == sorted(specs)
    for name, value in defaults.items():
        assert specs[name]["default"] == value, name
        assert specs[name].get("description"), name
