"""Each experiment's conf environment stores its versions apart, so the latest version of a data set
is always that experiment's own."""

from pathlib import Path

import pytest
from kedro.config import OmegaConfigLoader

from headstart.settings import CONFIG_LOADER_ARGS
from tests.conftest import PROJECT_ROOT

CONF = PROJECT_ROOT / "conf"
# conf/local is the user's overrides of the default experiment; conf/test its tiny twin for scratch copies.
SAME_AS_DEFAULT = {"base", "local", "test"}
EXPERIMENTS = sorted(p.name for p in CONF.iterdir() if p.is_dir() and p.name not in SAME_AS_DEFAULT)


def written(env: str) -> dict[str, str]:
    """Every place the catalog and the checkpoints write, per name, in `env`."""
    loader = OmegaConfigLoader(str(CONF), env=env, **CONFIG_LOADER_ARGS)
    places = {name: entry["filepath"] for name, entry in loader["catalog"].items() if "filepath" in entry}
    places.update(
        {name: entry["registered_model"] for name, entry in loader["catalog"].items() if "registered_model" in entry}
    )
    places["checkpoints"] = loader["parameters"]["runtime"]["checkpoint_dir"]
    return places


@pytest.mark.parametrize("env", EXPERIMENTS)
def test_an_experiment_environment_writes_nowhere_the_default_writes(env):
    default, experiment = written("local"), written(env)
    assert default.keys() == experiment.keys()
    shared = {name for name in default if default[name] == experiment[name]}
    assert not shared, f"conf/{env} writes where the default experiment does: {sorted(shared)}"
    assert all(Path(path).parts[0] == "data" for name, path in experiment.items() if "/" in path)


def test_experiments_exist_to_check():
    assert "domain_gap" in EXPERIMENTS
