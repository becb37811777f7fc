"""The work: gateway, evaluation, prompts and programs, search, statistics, local models.

litellm must read its bundled price map, never the network (machines may be offline; a fetch
blocks for seconds): set before any module of this package imports litellm.
"""

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
