"""headstart: measure whether a head start (transfer or multi-task learning) beats training from scratch."""

import warnings

__version__ = "0.1.0"

# Kedro 1.7's config loader calls OmegaConf 2.4's deprecated register_new_resolver each time a loader is
# made (several times a run); nothing a user can act on. Only that message, only from Kedro's module:
# every other warning, ours included, still shows.
warnings.filterwarnings(
    "ignore", message=r"register_new_resolver\(\) is deprecated", module=r"kedro\.config\.omegaconf_config"
)
