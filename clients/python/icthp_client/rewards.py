"""Drop-in reward functions for text-to-image RL loops.

- TRL's DDPOTrainer and ddpo-pytorch call
  reward_fn(images, prompts, prompt_metadata) -> (rewards, metadata):
  use ddpo_reward_fn (or ddpo_reward_fn_async, whose calls return a
  concurrent.futures.Future of that pair, in place of ddpo-pytorch's
  executor.submit(reward_fn, ...)).
- Flow-GRPO calls multi_score(device, score_dict) once and then
  fn(images, prompts, metadata, ref_images=None, only_strict=True) ->
  (score_details, {}), score_details holding each score and their weighted
  sum under "avg": use multi_score(url, {"ict": 1, "hp": 1}) (or
  multi_score_async).

images are what those loops hold: a B×C×H×W float tensor in [0, 1], a list
of PIL images, numpy arrays; they go to the server as raw uint8 pixels
(rounded and clamped as those loops do). Rewards come back as a float32
numpy array when numpy is importable (else a list); an item the server
could not score gets failed_value (NaN by default) and its error in the
metadata's "errors".
"""

from .client import Client

__all__ = ["ddpo_reward_fn", "ddpo_reward_fn_async", "trl_reward_fn", "multi_score", "multi_score_async"]


def _client(client, token):
    if isinstance(client, Client):
        return client
    return Client(client, token=token)


def _array(values, failed_value):
    vals = [failed_value if v is None else float(v) for v in values]
    try:
        import numpy as np
    except ImportError:
        return vals
    return np.asarray(vals, dtype=np.float32)


def _as_list(prompts, n):
    if isinstance(prompts, str):
        return [prompts] * n
    return [str(p) for p in prompts]


def ddpo_reward_fn(client, token=None, weights=None, reward=None, failed_value=float("nan")):
    """reward_fn(images, prompts, prompt_metadata) -> (rewards, metadata) for
    TRL's DDPOTrainer(reward_function=...) and ddpo-pytorch. client is a
    Client or the server's URL; weights / reward choose the combination
    (default: the server's, the product of the loaded models' main scores;
    weights may mix any loaded models: {"pickscore": 0.5, "hpsv2": 1}).
    metadata carries every loaded model's scores by name (each component
    beside the reward), the models' versions and per-item errors."""
    c = _client(client, token)

    def reward_fn(images, prompts, prompt_metadata=None):
        from .images import to_images

        imgs = to_images(images)
        res = c.reward(imgs, _as_list(prompts, len(imgs)), weights=weights, reward=reward)
        meta = {name: _array(col, failed_value) for name, col in res.scores.items()}
        meta["models"] = res.models
        if res.errors:
            meta["errors"] = res.errors
        return _array(res.rewards, failed_value), meta

    reward_fn.client = c
    return reward_fn


trl_reward_fn = ddpo_reward_fn


def ddpo_reward_fn_async(client, token=None, weights=None, reward=None, failed_value=float("nan")):
    """Like ddpo_reward_fn, but each call returns at once a
    concurrent.futures.Future of (rewards, metadata), so that the loop can
    sample the next batch while this one is scored."""
    fn = ddpo_reward_fn(client, token, weights, reward, failed_value)

    def reward_fn(images, prompts, prompt_metadata=None):
        return fn.client._submit(fn, images, prompts, prompt_metadata)

    reward_fn.client = fn.client
    return reward_fn


def multi_score(client, score_dict, token=None, failed_value=float("nan")):
    """Flow-GRPO's multi_score(device, score_dict) with the server in place of
    the device: score_dict weighs any mix of the loaded models' scores (ict,
    hp, hp_logit, imagereward, pickscore, pickscore_prob, clipscore,
    clipscore100, hpsv2, aesthetic); fn(images, prompts, metadata, ref_images=None,
    only_strict=True) returns ({name: scores, ..., "avg": weighted sum}, {})
    from one request per batch."""
    if not score_dict:
        raise ValueError("multi_score: score_dict is empty")
    c = _client(client, token)
    weights = {k: float(v) for k, v in score_dict.items()}

    def _fn(images, prompts, metadata=None, ref_images=None, only_strict=True):
        from .images import to_images

        imgs = to_images(images)
        res = c.reward(imgs, _as_list(prompts, len(imgs)), weights=weights)
        details = {}
        for name in score_dict:
            if name not in res.scores:
                raise ValueError("multi_score: the server has no %r score (it has %s)" % (name, sorted(res.scores)))
            details[name] = _array(res.scores[name], failed_value)
        details["avg"] = _array(res.rewards, failed_value)
        return details, {}

    _fn.client = c
    return _fn


def multi_score_async(client, score_dict, token=None, failed_value=float("nan")):
    """multi_score whose calls return a concurrent.futures.Future of
    (score_details, {})."""
    fn = multi_score(client, score_dict, token, failed_value)

    def _fn(images, prompts, metadata=None, ref_images=None, only_strict=True):
        return fn.client._submit(fn, images, prompts, metadata)

    _fn.client = fn.client
    return _fn
