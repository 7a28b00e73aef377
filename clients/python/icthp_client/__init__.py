"""icthp_client: a standard-library client of the icthp reward service, and
drop-in reward functions for TRL's DDPOTrainer, ddpo-pytorch and Flow-GRPO.

    from icthp_client import Client
    c = Client("http://127.0.0.1:8080")
    c.reward(images, prompts).rewards
"""

from .client import (TENSOR_CONTENT_TYPE, APIError, Client, IcthpError, InputError, RewardResult,
                     TransportError)
from .images import Encoded, Raw, encode_png
from .rewards import ddpo_reward_fn, ddpo_reward_fn_async, multi_score, multi_score_async, trl_reward_fn

__version__ = "0.1.0"

__all__ = ["Client", "IcthpError", "APIError", "TransportError", "InputError", "RewardResult",
           "TENSOR_CONTENT_TYPE", "Raw", "Encoded", "encode_png", "ddpo_reward_fn", "ddpo_reward_fn_async",
           "trl_reward_fn", "multi_score", "multi_score_async"]
