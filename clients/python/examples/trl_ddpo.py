"""TRL's DDPOTrainer with icthp as its reward.

    icthp serve --ict DIR --hp DIR --addr 127.0.0.1:8080 &
    python3 examples/trl_ddpo.py --url http://127.0.0.1:8080

DDPOTrainer(config, reward_function, prompt_function, sd_pipeline) calls
reward_function(images, prompts, prompt_metadata) -> (rewards, metadata)
with images a B×3×H×W float tensor in [0, 1]. With config.async_reward_computation
TRL runs it on its own executor; the sync function is what it wants.
Without trl installed, this script makes one fake batch and calls the
function the way the trainer does.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from icthp_client import ddpo_reward_fn  # noqa: E402

from _example import example_parser, fake_batch  # noqa: E402


def main():
    ap = example_parser()
    args = ap.parse_args()

    # ICT × HP, the paper's reward; weights={"ict": 1, "hp": 1} would sum them instead.
    reward_fn = ddpo_reward_fn(args.url, token=args.token)
    try:
        from trl import DDPOConfig, DDPOTrainer, DefaultDDPOStableDiffusionPipeline  # noqa: F401
    except ImportError:
        prompts = ["a photo of a cat", "a watercolor fox", "a red bicycle", "a castle at dusk"]
        rewards, meta = reward_fn(fake_batch(len(prompts)), prompts, [{} for _ in prompts])
        print("trl not installed; one fake batch scored:")
        for p, r in zip(prompts, rewards):
            print("  %-22s reward %.6f" % (p, float(r)))
        print("models:", meta["models"])
        return
    pipeline = DefaultDDPOStableDiffusionPipeline("runwayml/stable-diffusion-v1-5")
    config = DDPOConfig(num_epochs=1, async_reward_computation=True)
    trainer = DDPOTrainer(config, reward_fn, lambda: ("a photo of a cat", {}), pipeline)
    trainer.train()


if __name__ == "__main__":
    main()
