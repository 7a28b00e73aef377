"""Flow-GRPO with icthp as its reward.

Flow-GRPO builds its reward once, in its train scripts, as
    reward_fn = getattr(flow_grpo.rewards, "multi_score")(accelerator.device, config.reward_fn)
with config.reward_fn a dict of weights, then calls it on an executor:
    rewards = executor.submit(reward_fn, images, prompts, prompt_metadata, only_strict=True)
    rewards, reward_metadata = rewards.result()
and trains on rewards["avg"]. The drop-in takes the server in place of the
device, and icthp's score names in the dict:
    reward_fn = icthp_client.multi_score(url, {"ict": 1.0, "hp": 1.0, "imagereward": 0.5})
One request per batch computes every score and the weighted sum.

    python3 examples/flow_grpo.py --url http://127.0.0.1:8080
"""

import concurrent.futures
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from icthp_client import multi_score  # noqa: E402

from _example import example_parser, fake_batch  # noqa: E402


def main():
    ap = example_parser()
    ap.add_argument("--weights", default="ict=1,hp=1", help="NAME=W,... over ict, hp, hp_logit, imagereward")
    args = ap.parse_args()
    score_dict = {k: float(v) for k, v in (kv.split("=") for kv in args.weights.split(","))}

    reward_fn = multi_score(args.url, score_dict, token=args.token)
    prompts = ["a corgi wearing a hat", "neon city at night", "a bowl of ramen", "an old map"]
    images = fake_batch(len(prompts))
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as executor:  # as Flow-GRPO does
        rewards = executor.submit(reward_fn, images, prompts, [{} for _ in prompts], only_strict=True)
        rewards, reward_metadata = rewards.result()
    for name, vals in rewards.items():
        print("%-6s %s" % (name, " ".join("%.5f" % float(v) for v in vals)))


if __name__ == "__main__":
    main()
