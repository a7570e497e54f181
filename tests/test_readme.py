"""The README's configuration table names every setting the code reads."""

from __future__ import annotations

import re

from app.config import Settings
from app.proxy.config import ProxySettings
from app.resources import CHECKOUT_ROOT


def documented_variables() -> set[str]:
    readme = (CHECKOUT_ROOT / "README.md").read_text()
    return set(re.findall(r"^\| `(TWIN_[A-Z0-9_]+)`", readme, flags=re.MULTILINE))


def known_variables() -> set[str]:
    variables = set()
    for settings_class in (Settings, ProxySettings):
        prefix = settings_class.model_config["env_prefix"]
        variables |= {f"{prefix}{name.upper()}" for name in settings_class.model_fields}
    return variables


def test_every_setting_is_in_the_readme() -> None:
    assert known_variables() - documented_variables() == set()


def test_the_readme_documents_no_setting_that_does_not_exist() -> None:
    assert documented_variables() - known_variables() == set()
