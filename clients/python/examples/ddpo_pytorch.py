"""ddpo-pytorch with icthp as its reward.

In ddpo-pytorch's scripts/train.py the reward is
    reward_fn = getattr(ddpo_pytorch.rewards, config.reward_fn)()
    rewards = executor.submit(reward_fn, images, prompts, prompt_metadata)
    ...
    rewards, reward_metadata = rewards.result()
Replace the first line with
    reward_fn = icthp_client.ddpo_reward_fn(url)
or drop the executor and use the async variant, whose call returns the
future itself:
    reward_fn = icthp_client.ddpo_reward_fn_async(url)
    rewards = reward_fn(images, prompts, prompt_metadata)
This script runs that second shape on fake batches: sampling of batch i+1
overlaps the scoring of batch i.

    python3 examples/ddpo_pytorch.py --url http://127.0.0.1:8080
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from icthp_client import ddpo_reward_fn_async  # noqa: E402

from _example import example_parser, fake_batch  # noqa: E402


def main():
    ap = example_parser()
    ap.add_argument("--batches", type=int, default=3)
    args = ap.parse_args()

    reward_fn = ddpo_reward_fn_async(args.url, token=args.token)
    prompts = ["a cat", "a dog", "a horse", "a monkey"]  # ddpo-pytorch's simple_animals
    pending = []
    for i in range(args.batches):
        images = fake_batch(len(prompts), seed=i)  # the sampler's work
        pending.append(reward_fn(images, prompts, [{} for _ in prompts]))
    for i, fut in enumerate(pending):
        rewards, meta = fut.result()
        print("batch %d: mean reward %.6f (ict %s)" % (i, sum(map(float, rewards)) / len(rewards), "ict" in meta))


if __name__ == "__main__":
    main()
